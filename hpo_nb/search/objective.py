"""Objectives: a notebook cell (or a plain function) that maps a trial to a value.

>>> import optuna
>>> obj = objective_from_cell("f", "x = trial.suggest_float('x', -1, 1)\nx ** 2", {})
>>> obj(optuna.trial.FixedTrial({"x": 0.5}))
0.25
"""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import hashlib
import inspect
import json
import keyword
import linecache
import textwrap
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from hpo_nb._errors import HpoError

if TYPE_CHECKING:
    from hpo_nb.search.space import SearchSpace

__all__ = ["DIRECTIONS", "Objective", "as_objective", "objective_from_cell", "parse_directions"]

DIRECTIONS = ("minimize", "maximize")


@dataclasses.dataclass(frozen=True)
class Objective:
    """A named objective with its optimization directions (one per value it returns)."""

    name: str
    func: Callable[[Any], Any]
    directions: tuple[str, ...] = ("minimize",)
    source: str | None = None
    space: SearchSpace | None = None

    def __call__(self, trial: Any) -> Any:
        return self.func(trial)

    @property
    def fingerprint(self) -> str:
        """A short hash of the source and the space, to tell versions of an objective apart."""
        text = self.source if self.source is not None else getattr(self.func, "__qualname__", "")
        if self.space is not None:
            text += json.dumps(self.space.to_dict(), sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def with_space(self, space: SearchSpace) -> Objective:
        """The same objective over a declarative ``space`` (its values arrive as ``params``)."""
        if self.source is not None:
            namespace = getattr(self.func, "__globals__", {})
            return objective_from_cell(self.name, self.source, namespace, self.directions, space)
        func = self.func

        def with_params(trial: Any) -> Any:
            space.suggest(trial)  # the objective reads them from trial.params
            return func(trial)

        with_params.__name__ = getattr(func, "__name__", self.name)
        return dataclasses.replace(self, func=with_params, space=space)

    def literal_distributions(self) -> dict[str, BaseDistribution]:
        """The distributions its code asks for in ``suggest_*`` calls whose arguments are all
        literals, the last call of each name winning: what its trials will probably ask for,
        known before any of them runs. A guess only (a call may sit in a branch never taken).

        >>> f = objective_from_cell("f", "trial.suggest_int('n', 1, 8, log=True)", {})
        >>> f.literal_distributions()
        {'n': IntDistribution(high=8, log=True, low=1, step=1)}
        """
        source = self.source
        if source is None:
            with contextlib.suppress(OSError, TypeError):
                source = textwrap.dedent(inspect.getsource(self.func))
        try:
            tree = ast.parse(source or "")
        except SyntaxError:
            return {}
        found: dict[str, BaseDistribution] = {}
        for node in ast.walk(tree):
            if not (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in _DISTRIBUTION_OF
            ):
                continue
            with contextlib.suppress(ValueError, TypeError, SyntaxError, MemoryError):
                args = [ast.literal_eval(a) for a in node.args]
                kwargs = {k.arg: ast.literal_eval(k.value) for k in node.keywords if k.arg}
                if args and isinstance(args[0], str) and len(kwargs) == len(node.keywords):
                    found[args[0]] = _DISTRIBUTION_OF[node.func.attr](*args, **kwargs)
        return found

    @property
    def filename(self) -> str:
        """The pseudo file name under which tracebacks show the cell's lines."""
        return f"<hpo_objective {self.name}>"

    def register_source(self) -> None:
        """Let tracebacks in this process show the cell's source lines."""
        if self.source is not None:
            lines = self.source.splitlines(keepends=True)
            linecache.cache[self.filename] = (len(self.source), None, lines, self.filename)


# Each ``suggest_*`` method of Optuna's trial: its arguments -> the distribution it asks for.
_DISTRIBUTION_OF: dict[str, Callable[..., BaseDistribution]] = {
    "suggest_float": lambda name, low, high, *, step=None, log=False: FloatDistribution(
        low, high, log=log, step=step
    ),
    "suggest_int": lambda name, low, high, *, step=1, log=False: IntDistribution(
        low, high, log=log, step=step
    ),
    "suggest_categorical": lambda name, choices: CategoricalDistribution(choices),
    "suggest_uniform": lambda name, low, high: FloatDistribution(low, high),
    "suggest_loguniform": lambda name, low, high: FloatDistribution(low, high, log=True),
    "suggest_discrete_uniform": lambda name, low, high, q: FloatDistribution(low, high, step=q),
}


def parse_directions(direction: str | None, directions: Sequence[str] | None) -> tuple[str, ...]:
    """Normalize ``direction=`` / ``directions=`` into a tuple, with one-line errors."""
    if direction is not None and directions:
        raise HpoError("give either --direction or --directions, not both")
    chosen = [direction] if direction is not None else list(directions or ["minimize"])
    for d in chosen:
        if d not in DIRECTIONS:
            raise HpoError(f"unknown direction {d!r}: use 'minimize' or 'maximize'")
    return tuple(chosen)


def _check_name(name: str) -> None:
    if not name.isidentifier() or keyword.iskeyword(name):
        raise HpoError(f"{name!r} is not a valid objective name: use a Python identifier")


def _returns_value(body: list[ast.stmt]) -> bool:
    """True when the body ends with an expression or contains a ``return`` of its own."""
    if isinstance(body[-1], ast.Expr):
        return True
    scopes = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)
    stack: list[ast.AST] = list(body)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Return):
            return True
        if not isinstance(node, scopes):
            stack.extend(ast.iter_child_nodes(node))
    return False


def objective_from_cell(
    name: str,
    source: str,
    namespace: dict[str, Any],
    directions: Sequence[str] = ("minimize",),
    space: SearchSpace | None = None,
) -> Objective:
    """Compile a cell body into ``name(trial)``: its last expression (or a ``return``) is the value.

    The function's globals are ``namespace`` (the notebook's), so it sees every variable, import and
    function defined there. Syntax errors name the line of the cell. With a declarative ``space``
    the cell starts with ``params``, the values suggested from it.
    """
    _check_name(name)
    filename = f"<hpo_objective {name}>"
    try:
        tree = ast.parse(source, filename=filename)
    except SyntaxError as e:
        raise HpoError(_syntax_message(name, e)) from None
    body = tree.body
    if not body:
        raise HpoError(f"objective {name!r} is empty: write its body and end with the value")
    if not _returns_value(body):
        raise HpoError(
            f"objective {name!r} has no value: end the cell with an expression (or 'return value')"
        )
    if isinstance(body[-1], ast.Expr):
        body[-1] = ast.copy_location(ast.Return(value=body[-1].value), body[-1])
    # A closure over the space: the compiled function stays a plain f(trial).
    template = ast.parse(
        f"def __hpo_make__(__hpo_space__):\n"
        f"    def {name}(trial):\n"
        f"        params = __hpo_space__.suggest(trial) if __hpo_space__ is not None else {{}}\n"
        f"    return {name}\n",
        filename=filename,
    )
    maker = template.body[0]
    assert isinstance(maker, ast.FunctionDef) and isinstance(maker.body[0], ast.FunctionDef)
    func_def = maker.body[0]
    prologue = func_def.body if space is not None else []
    for node in prologue:  # tracebacks point at the cell's first line for the space
        ast.increment_lineno(node, 1 - node.lineno)
    func_def.body = [*prologue, *body]
    ast.fix_missing_locations(template)
    try:
        code = compile(template, filename, "exec")
    except SyntaxError as e:  # e.g. 'yield' or 'nonlocal' at the top of the cell
        raise HpoError(_syntax_message(name, e)) from None
    scratch: dict[str, Any] = {}
    exec(code, namespace, scratch)
    func = scratch["__hpo_make__"](space)
    if _is_generator(func):
        raise HpoError(f"objective {name!r} uses 'yield': return the value instead")
    objective = Objective(
        name=name, func=func, directions=tuple(directions), source=source, space=space
    )
    objective.register_source()
    return objective


def _is_generator(func: Callable[..., Any]) -> bool:
    import inspect

    return inspect.isgeneratorfunction(func) or inspect.iscoroutinefunction(func)


def _syntax_message(name: str, error: SyntaxError) -> str:
    text = (error.text or "").strip()
    where = f"line {error.lineno}" if error.lineno else "the cell"
    shown = f": {text}" if text else ""
    return f"syntax error in objective {name!r}, {where}: {error.msg}{shown}"


def as_objective(
    objective: Objective | Callable[[Any], Any],
    directions: Sequence[str] | None = None,
) -> Objective:
    """Accept an :class:`Objective` or a plain ``f(trial)`` function."""
    if isinstance(objective, Objective):
        if directions is not None and tuple(directions) != objective.directions:
            return dataclasses.replace(objective, directions=tuple(directions))
        return objective
    if not callable(objective):
        raise HpoError(f"the objective must be callable, got {type(objective).__name__}")
    name = getattr(objective, "__name__", None) or type(objective).__name__
    if not name.isidentifier():
        name = "objective"
    return Objective(name=name, func=objective, directions=tuple(directions or ("minimize",)))

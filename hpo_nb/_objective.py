"""Objectives: a notebook cell (or a plain function) that maps a trial to a value.

>>> import optuna
>>> obj = objective_from_cell("f", "x = trial.suggest_float('x', -1, 1)\nx ** 2", {})
>>> obj(optuna.trial.FixedTrial({"x": 0.5}))
0.25
"""

from __future__ import annotations

import ast
import dataclasses
import hashlib
import keyword
import linecache
from collections.abc import Callable, Sequence
from typing import Any

from ._errors import HpoError

__all__ = ["DIRECTIONS", "Objective", "as_objective", "objective_from_cell", "parse_directions"]

DIRECTIONS = ("minimize", "maximize")


@dataclasses.dataclass(frozen=True)
class Objective:
    """A named objective with its optimization directions (one per value it returns)."""

    name: str
    func: Callable[[Any], Any]
    directions: tuple[str, ...] = ("minimize",)
    source: str | None = None

    def __call__(self, trial: Any) -> Any:
        return self.func(trial)

    @property
    def fingerprint(self) -> str:
        """A short hash of the source, to tell versions of an objective apart."""
        text = self.source if self.source is not None else getattr(self.func, "__qualname__", "")
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    @property
    def filename(self) -> str:
        """The pseudo file name under which tracebacks show the cell's lines."""
        return f"<hpo_objective {self.name}>"

    def register_source(self) -> None:
        """Let tracebacks in this process show the cell's source lines."""
        if self.source is not None:
            lines = self.source.splitlines(keepends=True)
            linecache.cache[self.filename] = (len(self.source), None, lines, self.filename)


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
) -> Objective:
    """Compile a cell body into ``name(trial)``: its last expression (or a ``return``) is the value.

    The function's globals are ``namespace`` (the notebook's), so it sees every variable, import and
    function defined there. Syntax errors name the line of the cell.
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
    template = ast.parse(f"def {name}(trial):\n    pass\n", filename=filename)
    func_def = template.body[0]
    assert isinstance(func_def, ast.FunctionDef)
    func_def.body = body
    ast.fix_missing_locations(template)
    try:
        code = compile(template, filename, "exec")
    except SyntaxError as e:  # e.g. 'yield' or 'nonlocal' at the top of the cell
        raise HpoError(_syntax_message(name, e)) from None
    scratch: dict[str, Any] = {}
    exec(code, namespace, scratch)
    func = scratch[name]
    if _is_generator(func):
        raise HpoError(f"objective {name!r} uses 'yield': return the value instead")
    objective = Objective(name=name, func=func, directions=tuple(directions), source=source)
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

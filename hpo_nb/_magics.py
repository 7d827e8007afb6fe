"""IPython magics: they parse arguments and delegate to :mod:`hpo_nb`'s Python API."""

from __future__ import annotations

import argparse
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring

from ._algorithms import PRUNERS, SAMPLERS
from ._errors import HpoError
from ._objective import DIRECTIONS, Objective, as_objective, objective_from_cell, parse_directions
from ._progress import RunState
from ._run import Run, run

__all__ = ["HpoMagics"]


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text}")
    return value


@magics_class
class HpoMagics(Magics):
    """``%%hpo_objective`` and ``%hpo_run``."""

    def __init__(self, shell: Any) -> None:
        super().__init__(shell)
        self.objectives: dict[str, Objective] = {}

    @property
    def _user_ns(self) -> dict[str, Any]:
        assert self.shell is not None
        return self.shell.user_ns

    @magic_arguments()
    @argument("name", help="name of the objective (and of its study by default)")
    @argument("--direction", choices=DIRECTIONS, help="optimization direction (one objective)")
    @argument(
        "--directions",
        nargs="+",
        choices=DIRECTIONS,
        metavar="D",
        help="one direction per returned value (multi-objective)",
    )
    @cell_magic
    def hpo_objective(self, line: str, cell: str) -> None:
        """Turn the cell into an objective ``NAME(trial)``; its last expression is the value.

        Example::

            %%hpo_objective quadratic --direction minimize
            x = trial.suggest_float("x", -10, 10)
            (x - 2) ** 2
        """
        args = parse_argstring(self.hpo_objective, line)
        try:
            directions = parse_directions(args.direction, args.directions)
            objective = objective_from_cell(args.name, cell, self._user_ns, directions)
        except HpoError as e:
            raise UsageError(str(e)) from None
        self.objectives[objective.name] = objective
        self._user_ns[objective.name] = objective.func

    @magic_arguments()
    @argument("name", help="an objective defined with %%%%hpo_objective (or any f(trial))")
    @argument(
        "--n-trials",
        type=_positive_int,
        required=True,
        metavar="N",
        help="finished trials the study should reach in total (earlier runs count)",
    )
    @argument("--study", help="study name (default: the objective's name)")
    @argument("--storage", help="database URL or SQLite file (default: sqlite:///hpo.db)")
    @argument("--sampler", choices=sorted(SAMPLERS), default="tpe", help="search algorithm")
    @argument("--pruner", choices=sorted(PRUNERS), default="median", help="pruning rule")
    @argument("--workers", type=_positive_int, metavar="K", help="local worker processes")
    @argument("--cluster", help="'local' (default) or the address of a dask scheduler")
    @argument(
        "--timeout",
        type=_positive_float,
        metavar="SECONDS",
        help="start no new trial after this many seconds",
    )
    @argument("--seed", type=int, help="sampler seed")
    @argument("--direction", choices=DIRECTIONS, help="override the objective's direction")
    @argument("--directions", nargs="+", choices=DIRECTIONS, metavar="D")
    @argument("--wait", action="store_true", help="block until the study ends")
    @argument("-o", dest="output", metavar="VAR", help="store the run handle in VAR")
    @line_magic
    def hpo_run(self, line: str) -> Run:
        """Create or resume a study and run it on dask; the kernel stays free unless --wait.

        Example::

            %hpo_run quadratic --n-trials 50
        """
        args = parse_argstring(self.hpo_run, line)
        objective = self._objective(args.name)
        try:
            declared = (
                parse_directions(args.direction, args.directions)
                if args.direction or args.directions
                else None
            )
            handle = run(
                as_objective(objective, declared),
                args.n_trials,
                study=args.study,
                storage=args.storage,
                sampler=args.sampler,
                pruner=args.pruner,
                workers=args.workers,
                cluster=args.cluster,
                timeout=args.timeout,
                seed=args.seed,
            )
        except HpoError as e:
            raise UsageError(str(e)) from None
        handle._show_in_cell(getattr(self.shell, "execution_count", None))
        if args.output:
            self._user_ns[args.output] = handle
        if args.wait:
            handle.wait()
            if handle.state == RunState.FAILED:
                raise UsageError(f"study {handle.study.study_name!r} failed: {handle.reason}")
        return handle

    def _objective(self, name: str) -> Objective:
        registered = self.objectives.get(name)
        current = self._user_ns.get(name)
        if registered is not None and (current is None or current is registered.func):
            return registered
        if callable(current):
            return as_objective(current)
        known = ", ".join(sorted(self.objectives)) or "none yet"
        raise UsageError(
            f"unknown objective {name!r}: define it with %%hpo_objective {name} (defined: {known})"
        )

"""IPython magics: they parse arguments and delegate to :mod:`hpo_nb`'s Python API."""

from __future__ import annotations

import argparse
import ast
import contextlib
import json
import pprint
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring

from hpo_nb._errors import HpoError
from hpo_nb.engine import interrupts, lifecycle
from hpo_nb.engine.options import OptionSpec, RunOptions, option_specs
from hpo_nb.engine.progress import RunState
from hpo_nb.engine.run import Run, active_runs, run
from hpo_nb.frontends.console import Console, show_run
from hpo_nb.frontends.console import show as show_console
from hpo_nb.io.plots import FORMATS as PLOT_FORMATS
from hpo_nb.search.objective import (
    DIRECTIONS,
    Objective,
    as_objective,
    objective_from_cell,
    parse_directions,
)
from hpo_nb.search.space import SearchSpace

__all__ = ["HpoMagics"]


def _unquote(text: str) -> str:
    """IPython keeps the quotes around an argument: ``'{x: 1}'`` arrives quoted."""
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text


def _parse(magic: Callable[..., Any], line: str) -> argparse.Namespace:
    """``parse_argstring``; a quote left open is a one-line ``UsageError`` as well."""
    try:
        return parse_argstring(magic, line)
    except ValueError as e:  # from IPython's arg_split (shlex): "No closing quotation"
        raise UsageError(f"{e}: close the quote, or escape it") from None


def _flat(groups: list[list[str]] | None) -> list[str]:
    return [_unquote(item) for group in groups or [] for item in group]


def _storage_argument(func: Callable[..., Any]) -> Callable[..., Any]:
    text = "database URL or SQLite file (default: hpo.db)"
    return argument("--storage", type=_unquote, help=text)(func)


def _flag_type(name: str, spec: OptionSpec) -> Callable[[str], Any]:
    """argparse's ``type=`` for an option: the flag's text converted, then checked as
    :class:`RunOptions` checks it (a bad value is argparse's one-line usage error)."""
    convert = spec.text_type or str

    def parse(text: str) -> Any:
        text = _unquote(text)
        try:
            try:
                value = convert(text)
            except ValueError:
                value = text  # the check says what it expected, and quotes the text
            return spec.check(name, value)
        except HpoError as e:
            raise argparse.ArgumentTypeError(str(e)) from None

    parse.__name__ = spec.metavar or name  # what argparse names in "invalid ... value"
    return parse


def _option_argument(name: str, spec: OptionSpec, required: bool) -> Callable[..., Any]:
    """The ``@argument`` of one run option, generated from its spec: its dest is its name."""
    kwargs: dict[str, Any] = {"dest": name, "help": spec.help, "default": None}
    if required:
        kwargs["required"] = True
    if spec.switch:
        kwargs.update(action="store_true", default=False)
    else:
        kwargs["metavar"] = spec.metavar
        if spec.choices is not None:
            kwargs.update(choices=list(spec.choices), type=_unquote)
        elif spec.text_type is not None:
            kwargs["type"] = _flag_type(name, spec)
        elif spec.reads is None:  # a name, a URL, an address: as typed, quotes removed
            kwargs["type"] = _unquote
        if spec.many:
            kwargs["nargs"] = "+"
        if spec.repeat:
            kwargs["action"] = "append"
    return argument(spec.flag or "--" + name.replace("_", "-"), **kwargs)


def run_options(*, required: tuple[str, ...] = (), skip: tuple[str, ...] = ()) -> Any:
    """Decorate a magic with one flag per :class:`RunOptions` field (except ``skip``)."""

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        for name, spec in reversed(option_specs().items()):
            if name in skip:
                continue
            func = _option_argument(name, spec, name in required)(func)
        return func

    return decorate


def _handle_flags(func: Callable[..., Any]) -> Callable[..., Any]:
    """``--wait`` and ``-o VAR``: what a magic does with the run it starts."""
    func = argument("-o", dest="output", metavar="VAR", help="store the run handle in VAR")(func)
    return argument("--wait", action="store_true", help="block until the study ends")(func)


@magics_class
class HpoMagics(Magics):
    """``%%hpo_objective``, ``%hpo_run`` and the study life-cycle magics."""

    def __init__(self, shell: Any) -> None:
        super().__init__(shell)
        self.objectives: dict[str, Objective] = {}

    @property
    def _user_ns(self) -> dict[str, Any]:
        assert self.shell is not None
        return self.shell.user_ns

    # -- defining and running ----------------------------------------------------------------
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
    @argument(
        "--space",
        metavar="SPACE",
        help="declarative search space; the cell gets the suggested values as `params`",
    )
    @cell_magic
    def hpo_objective(self, line: str, cell: str) -> None:
        """Turn the cell into an objective ``NAME(trial)``; its last expression is the value.

        Example::

            %%hpo_objective quadratic --direction minimize
            x = trial.suggest_float("x", -10, 10)
            (x - 2) ** 2
        """
        args = _parse(self.hpo_objective, line)
        with _usage_errors():
            directions = parse_directions(args.direction, args.directions)
            space = self._space(args.space) if args.space else None
            objective = objective_from_cell(args.name, cell, self._user_ns, directions, space)
        self.objectives[objective.name] = objective
        self._user_ns[objective.name] = objective.func

    @magic_arguments()
    @argument("name", help="an objective defined with %%%%hpo_objective (or any f(trial))")
    @run_options(required=("n_trials",))
    @_handle_flags
    @line_magic
    def hpo_run(self, line: str) -> Run:
        """Create or resume a study and run it on dask; the kernel stays free unless --wait.

        Example::

            %hpo_run quadratic --n-trials 50 --concurrency 4 --trial-timeout 600
        """
        args = _parse(self.hpo_run, line)
        objective = self._objective(args.name)
        with interrupts.watch():  # one Ctrl-C, even one Python dropped, stops a --wait run
            with _usage_errors():
                handle = run(objective, options=RunOptions.of(**self._given(args)))
            return self._show(handle, args)

    @magic_arguments()
    @argument(
        "study", type=_unquote, help="the study to run again, with the options it last ran with"
    )
    @run_options(skip=("study",))
    @_handle_flags
    @line_magic
    def hpo_resume(self, line: str) -> Run:
        """Resume a study (after a restart, or one stopped earlier) with its last options; the
        flags given change them (e.g. ``--n-trials 200`` for a new target)."""
        args = _parse(self.hpo_resume, line)
        known: dict[str, Any] = {
            **{k: v for k, v in self._user_ns.items() if callable(v)},
            **self.objectives,
        }
        with interrupts.watch():
            with _usage_errors():
                changes = self._given(args, skip=("study",))  # the positional is the study
                handle = lifecycle.resume(args.study, known, **changes)
            return self._show(handle, args)

    @magic_arguments()
    @argument("name", help="an objective (%%%%hpo_objective) or an existing study")
    @run_options()
    @argument("-o", dest="output", metavar="VAR", help="store the panel in VAR")
    @line_magic
    def hpo_panel(self, line: str) -> None:
        """Show the control panel: edit the space, pick the algorithms, start, stop and watch;
        the flags are the options its Start runs with.

        Example::

            %hpo_panel quadratic --n-trials 200
        """
        args = _parse(self.hpo_panel, line)
        with _usage_errors():
            options = RunOptions.of(**self._given(args))
            study = options.study or args.name
            objective = self._objective_or_none(args.name)
            if objective is None:
                recorded = lifecycle.recorded_config(study, options.storage).get("objective")
                objective = self._objective_or_none(recorded) if recorded else None
            console = Console(study=study, objective=objective, options=options)
        show_console(console)
        if args.output:
            self._user_ns[args.output] = console

    def _objective_or_none(self, name: str) -> Objective | None:
        try:
            return self._objective(name)
        except UsageError:
            return None

    def _show(self, handle: Run, args: argparse.Namespace) -> Run:
        try:
            show_run(handle, getattr(self.shell, "execution_count", None))
        except KeyboardInterrupt:  # before --wait took over: stop as it would have
            if args.wait:
                with contextlib.suppress(KeyboardInterrupt):  # the wait raises it again
                    handle.stop(reason="interrupted").wait()
            raise
        if args.output:
            self._user_ns[args.output] = handle
        if args.wait:
            handle.wait()
            if handle.state == RunState.FAILED:
                raise UsageError(f"study {handle.study.study_name!r} failed: {handle.reason}")
        return handle

    # -- the life cycle ----------------------------------------------------------------------
    @magic_arguments()
    @_storage_argument
    @line_magic
    def hpo_list(self, line: str) -> lifecycle.StudyList:
        """The studies of a storage: state, counts, best value, sampler, last activity."""
        args = _parse(self.hpo_list, line)
        with _usage_errors():
            return lifecycle.studies(args.storage)

    @magic_arguments()
    @argument(
        "study", nargs="?", type=_unquote, help="a study (default: the studies run in this kernel)"
    )
    @_storage_argument
    @line_magic
    def hpo_status(self, line: str) -> Any:
        """A study's state and its reason, counts, best value and sampler."""
        args = _parse(self.hpo_status, line)
        with _usage_errors():
            if args.study:
                return lifecycle.status(args.study, args.storage)
            names = dict.fromkeys(r.study.study_name for r in active_runs())
            return lifecycle.StudyList(lifecycle.status(n) for n in names)

    @magic_arguments()
    @argument("study", nargs="?", type=_unquote, help="a study (default: every run of this kernel)")
    @argument("--now", action="store_true", help="cancel running trials (marked FAIL)")
    @_storage_argument
    @line_magic
    def hpo_stop(self, line: str) -> None:
        """Stop a study gracefully (running trials finish) or --now, from any kernel."""
        args = _parse(self.hpo_stop, line)
        with _usage_errors():
            names = [args.study] if args.study else [r.study.study_name for r in active_runs()]
            if not names:
                raise HpoError("no study is running in this kernel: name the study to stop")
            for name in names:
                print(lifecycle.stop(name, args.storage, now=args.now))

    @magic_arguments()
    @argument("study", type=_unquote)
    @argument("--cell", action="store_true", help="insert a cell below with the parameters")
    @_storage_argument
    @line_magic
    def hpo_best(self, line: str) -> Any:
        """The best parameters (or the Pareto front of a multi-objective study)."""
        args = _parse(self.hpo_best, line)
        with _usage_errors():
            result = lifecycle.best(args.study, args.storage)
            info = lifecycle.status(args.study, args.storage)
        if isinstance(result, dict):
            print(f"best value {info.best_value:.6g} (trial {info.best_number}) of {args.study!r}")
            text = f"best_params = {pprint.pformat(result, sort_dicts=False)}"
        else:
            print(f"Pareto front of {args.study!r}: {len(result)} trials")
            text = f"pareto_front = {pprint.pformat(result, sort_dicts=False)}"
        if args.cell and self.shell is not None:
            self.shell.set_next_input(text, replace=False)
        return result

    @magic_arguments()
    @argument("study", type=_unquote)
    @argument(
        "--format",
        choices=["json", "csv", "parquet"],
        help="json: the best configuration; csv, parquet: every trial (with --out)",
    )
    @argument("--out", metavar="PATH", type=_unquote)
    @argument(
        "--plots",
        metavar="DIR",
        type=_unquote,
        help="write every chart (history, importance, ...) to DIR",
    )
    @argument(
        "--plot-formats",
        nargs="+",
        choices=list(PLOT_FORMATS),
        metavar="FORMAT",
        help="any of png, svg, html (standalone, offline); default: all three",
    )
    @argument(
        "--archive",
        metavar="PATH",
        type=_unquote,
        help="the whole study, every trial as it is, in one compressed file for %%hpo_import",
    )
    @_storage_argument
    @line_magic
    def hpo_export(self, line: str) -> None:
        """Write a study's best configuration (json), its trials table (csv, parquet), its
        charts (--plots DIR) and/or a lossless archive of the whole study (--archive PATH)."""
        args = _parse(self.hpo_export, line)
        if args.plot_formats and not args.plots:
            raise UsageError("--plot-formats needs --plots DIR")
        if not (args.format or args.out or args.plots or args.archive):
            raise UsageError("give --format and --out, or --plots DIR, or both, or --archive PATH")
        for given, needed in (("format", "out"), ("out", "format")):
            if getattr(args, given) and not getattr(args, needed):
                raise UsageError(f"the following arguments are required: --{needed}")
        with _usage_errors():
            if args.format:
                print(f"wrote {lifecycle.export(args.study, args.out, args.format, args.storage)}")
            if args.archive:
                path = lifecycle.export_archive(args.study, args.archive, args.storage)
                print(f"wrote {path} ({path.stat().st_size / 2**20:.2f} MiB)")
            if args.plots:
                formats = args.plot_formats or PLOT_FORMATS
                files = lifecycle.plots(args.study, args.plots, formats, args.storage)
                print(f"wrote {len(files)} files to {args.plots}")
                for stem in dict.fromkeys(f.stem for f in files):
                    print("  " + " ".join(f.name for f in files if f.stem == stem))

    @magic_arguments()
    @argument("path", type=_unquote, help="an archive written by %%hpo_export STUDY --archive PATH")
    @argument(
        "--study",
        metavar="NEW_NAME",
        type=_unquote,
        help="the study's name (default: the archived one)",
    )
    @_storage_argument
    @line_magic
    def hpo_import(self, line: str) -> None:
        """Re-create an archived study, with identical trials, in a storage (default: hpo.db).

        Example::

            %hpo_import quad.zip --study quad-copy --storage sqlite:///other.db
        """
        args = _parse(self.hpo_import, line)
        with _usage_errors():
            name = lifecycle.import_archive(args.path, args.storage, args.study)
        print(f"imported study {name!r} from {args.path}")

    @magic_arguments()
    @argument("study", type=_unquote)
    @argument("--yes", action="store_true", help="confirm: the trials are gone for good")
    @_storage_argument
    @line_magic
    def hpo_delete(self, line: str) -> None:
        """Delete a study and its trials."""
        args = _parse(self.hpo_delete, line)
        if not args.yes:
            raise UsageError(f"deleting {args.study!r} removes all its trials: add --yes")
        with _usage_errors():
            lifecycle.delete(args.study, args.storage)
        print(f"deleted {args.study!r}")

    # -- helpers -----------------------------------------------------------------------------
    def _given(self, args: argparse.Namespace, skip: tuple[str, ...] = ()) -> dict[str, Any]:
        """The run options given as flags, by name: variables and files read, KEY=VALUE pairs
        of repeated flags joined; :class:`RunOptions` checks them."""
        given: dict[str, Any] = {}
        for name, spec in option_specs().items():
            value = getattr(args, name, None)
            if name in skip or value is None or (spec.switch and not value):
                continue
            if spec.repeat:
                value = _flat(value)
            elif spec.reads == "space":
                value = self._space(value)
            elif spec.reads == "literal":
                value = self._value(value, spec.flag or "--" + name.replace("_", "-"))
            given[name] = value
        return given

    def _space(self, text: str) -> SearchSpace:
        """A variable, a YAML/JSON file, or YAML/JSON text."""
        text = _unquote(text)
        if text.isidentifier() and text in self._user_ns:
            return SearchSpace.parse(self._user_ns[text])
        path = Path(text).expanduser()
        if path.suffix in (".yaml", ".yml", ".json") and not any(c in text for c in "{}[]:\n"):
            if not path.is_file():
                raise HpoError(f"search space: no file {text}: check the path, or give the space")
            return SearchSpace.parse(path.read_text())
        return SearchSpace.parse(text)

    def _value(self, text: str, option: str) -> Any:
        """A variable or a Python/JSON literal."""
        text = _unquote(text)
        if text.isidentifier() and text in self._user_ns:
            return self._user_ns[text]
        for parse in (ast.literal_eval, json.loads):
            try:
                return parse(text)
            except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
                continue  # TypeError: {[1]: 2}, a list as a key
        raise HpoError(f"{option} {text!r} is neither a variable nor a literal dict or list")

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


@contextlib.contextmanager
def _usage_errors() -> Iterator[None]:
    """Turn hpo_nb's one-line errors into IPython's one-line ``UsageError``."""
    try:
        yield
    except HpoError as e:
        raise UsageError(str(e)) from None

"""What the control panel shows and what its buttons do, for one study.

A :class:`Console` feeds a :class:`~hpo_nb.frontends.panel.Panel` from the study's storage and
from its run (new finished trials only, at the run's throttled pace), keeps the top trials and the
parameter importances, and turns the panel's commands into calls of :func:`hpo_nb.run` and
:class:`hpo_nb.Run`. Starting, stopping and branching studies stay in ``engine.run`` and
``engine.lifecycle``; the console only asks.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import optuna
from optuna.distributions import BaseDistribution, check_distribution_compatibility
from optuna.trial import TrialState

from hpo_nb import _optuna
from hpo_nb._errors import HpoError, one_line
from hpo_nb.engine import lifecycle
from hpo_nb.engine.options import RunOptions, panel_fields
from hpo_nb.engine.progress import Progress
from hpo_nb.engine.quiet import quiet
from hpo_nb.engine.records import CONFIG_KEY
from hpo_nb.engine.rows import discovered, downsample, spec_of, trial_row
from hpo_nb.engine.run import Run, run
from hpo_nb.frontends.panel import Panel
from hpo_nb.io.archive import load_trials
from hpo_nb.io.plots import file_name
from hpo_nb.io.storage import display_url, open_storage, storage_url
from hpo_nb.search.algorithms import PRUNERS, SAMPLERS, main_options, make_pruner, make_sampler
from hpo_nb.search.objective import Objective, as_objective, parse_directions
from hpo_nb.search.space import SearchSpace

__all__ = ["Console", "panel", "show"]

_FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
_COUNTED = {"complete": "complete", "pruned": "pruned", "failed": "fail"}
SYNC_LIMIT = 5000  # rows a new view receives at most (the rest is downsampled)
TOP = 10
IMPORTANCE_SAMPLE = 1000  # complete trials the importance is computed from, at most
DEFAULT_TARGET = 100  # the panel's n_trials when neither the flags nor the study give one


class Console:
    """The panel of study ``study``: shows it, and runs ``objective`` on it when asked."""

    def __init__(
        self,
        *,
        study: str,
        objective: Objective | None = None,
        options: RunOptions | None = None,
        handle: Run | None = None,
    ) -> None:
        given = handle.options if handle is not None else options or RunOptions()
        objective = objective if handle is None else handle.objective
        if objective is not None and (given.direction or given.directions):
            declared = parse_directions(given.direction, given.directions)
            objective = as_objective(objective, declared)  # the panel shows them from the start
        self._objective = objective
        self._name = study
        self._url = handle.storage_url if handle is not None else storage_url(given.storage)
        self._lock = threading.RLock()
        self._rows: list[dict[str, Any]] = []
        self._numbers: set[int] = set()
        self._dists: dict[str, BaseDistribution] = {}
        self._run: Run | None = None
        self._seen = 0
        self._importance_at = 0
        self._complete = 0  # complete trials among the rows (counted as they arrive)
        self._importance_busy = False
        self._display: Any = None
        self.loaded = threading.Event()  # set once the study's trials are in the panel
        self.panel = Panel(self.command)
        directions, attrs = self._open(handle)
        self._directions = directions
        self._parent = attrs.get(lifecycle.PARENT_KEY)
        self._options = _starting_options(given, attrs.get(CONFIG_KEY) or {}, handle is None)
        self.panel.config = self._options.panel_settings()
        self.panel.options = _options()
        self.panel.study = {
            "name": study,
            "storage": display_url(self._url),
            "directions": list(directions),
            "objective": objective.name if objective is not None else None,
            "parent": self._parent,
        }
        self._declared = given.space or (objective.space if objective is not None else None)
        self._narrowed = given.narrow
        self._show_space()
        if handle is not None:  # its trials are in memory: quick
            self._loaded(handle.history(), handle.distributions())
            self._follow(handle)
        else:  # a large study takes seconds to read: the kernel does not wait for it
            self.panel.progress = _idle(study, self._options.n_trials or 0, directions)
            self.panel.status = "reading the study's trials ..."
            threading.Thread(target=self._read, daemon=True).start()

    def _ipython_display_(self) -> None:
        show(self)

    def __repr__(self) -> str:
        return f"<hpo_nb.Console {self.panel!r}>"

    @property
    def run(self) -> Run | None:
        """The run the panel follows (the latest one it started or was given)."""
        return self._run

    # -- what the panel shows ----------------------------------------------------------------
    def _open(self, handle: Run | None) -> tuple[tuple[str, ...], dict[str, Any]]:
        """The study's directions and system attributes; a one-line error if there is nothing
        to show. A run's are read through its own storage (no second connection)."""
        if handle is not None:
            directions = tuple(d.name.lower() for d in handle.study.directions)
            return directions, handle.study_attrs()
        rdb = open_storage(self._url)
        try:
            study_id = rdb.get_study_id_from_name(self._name)
        except KeyError:
            if self._objective is None:
                raise HpoError(
                    f"{self._name!r} is neither an objective nor a study in "
                    f"{display_url(self._url)}: define it with %%hpo_objective {self._name}"
                ) from None
            return self._objective.directions, {}
        directions = tuple(d.name.lower() for d in rdb.get_study_directions(study_id))
        return directions, rdb.get_study_system_attrs(study_id)

    def _read(self) -> None:
        """Read the study's finished trials from the storage, then show them."""
        rdb = open_storage(self._url)
        rows: list[dict[str, Any]] = []
        dists: dict[str, BaseDistribution] = {}
        try:
            study_id = rdb.get_study_id_from_name(self._name)
            for t in load_trials(rdb, study_id):  # a row at a time: no second copy of the study
                if t.state in _FINISHED:
                    rows.append(trial_row(t))
                    dists.update(discovered([t]))
        except KeyError:
            pass
        except Exception as e:
            self.panel.status = f"could not read the study: {type(e).__name__}: {e}"
            self.loaded.set()
            return
        self._loaded(rows, dists)
        if self._run is None or self._run.done:
            counts = {k: sum(r["s"] == s for r in self._rows) for k, s in _COUNTED.items()}
            target = self._options.n_trials or 0
            self.panel.progress = _idle(self._name, target, self._directions, counts)
        self.panel.status = ""

    def _loaded(self, rows: list[dict[str, Any]], dists: dict[str, BaseDistribution]) -> None:
        with self._lock:
            self._add_rows(rows)
            self._dists = {**dists, **self._dists}
            self._cmd_sync({})
        if self._declared is None:
            self._show_space()
        self._refresh_top(self._rows)
        self._maybe_importance()
        self._set_can()
        self.loaded.set()

    def _show_space(self) -> None:
        if self._declared is not None:
            self.panel.space = {"params": self._declared.to_dict(), "source": "declared"}
            return
        params = {n: spec_of(d) for n, d in self._dists.items()}
        if self._narrowed is not None:
            params.update(self._narrowed.to_dict())
        self.panel.space = {"params": params, "source": "discovered" if params else "none"}

    def _add_rows(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        new = [r for r in rows if r["n"] not in self._numbers]
        self._complete += sum(r["s"] == "complete" for r in new)
        self._numbers.update(r["n"] for r in new)
        self._rows.extend(new)
        return new

    def _refresh_top(self, new: list[dict[str, Any]]) -> None:
        directions = self.panel.study.get("directions") or ["minimize"]
        pool = [r for r in [*self.panel.top, *new] if r["s"] == "complete" and r["v"]]
        pool = [r for r in pool if all(v is not None for v in r["v"])]
        if len(directions) == 1:
            sign = -1 if directions[0] == "maximize" else 1
            top = sorted(pool, key=lambda r: sign * r["v"][0])[:TOP]
        else:
            top = _pareto(pool, directions)[:50]
        if top != self.panel.top:
            self.panel.top = top

    def _maybe_importance(self) -> None:
        complete = self._complete
        due = max(self._importance_at + 5, int(self._importance_at * 1.1))
        if complete < 5 or complete < due or self._importance_busy or not self._dists:
            return
        self._importance_busy, self._importance_at = True, complete
        rows, dists = list(self._rows), dict(self._dists)
        threading.Thread(target=self._importance, args=(rows, dists), daemon=True).start()

    def _importance(self, rows: list[dict[str, Any]], dists: dict[str, BaseDistribution]) -> None:
        """Optuna's default evaluator over (a sample of) the complete trials, off the kernel's
        thread; a failure only leaves the last result in place."""
        try:
            self.panel.importance = importance_of(rows, dists)
        except Exception:  # too few trials of a kind, a constant objective, ...
            pass
        finally:
            self._importance_busy = False

    # -- following a run ---------------------------------------------------------------------
    def _follow(self, handle: Run) -> None:
        with self._lock:
            self._run, self._seen = handle, 0
        handle.subscribe(self._on_progress)

    def _on_progress(self, progress: Progress) -> None:
        """Called by the run (at most a few times a second): send what is new."""
        handle = self._run
        if handle is None or progress.study != self._name:
            return
        with self._lock:
            rows = handle.rows
            new = self._add_rows(rows[self._seen :])
            self._seen = len(rows)
            if new:
                self.panel.send_rows(new, len(self._rows))
        if new:
            self._dists.update(handle.distributions())
            if self._declared is None:
                self._show_space()
            self._refresh_top(new)
            self._maybe_importance()
        self.panel.progress = _progress_json(progress)
        self._set_can()
        if progress.state.done and self._display is not None:
            self._display.update(self.panel)  # the saved notebook keeps the final snapshot

    def _set_can(self) -> None:
        running = self._run is not None and not self._run.done
        idle = self._objective is not None and not running
        can = {
            "start": idle and not self._rows,
            "resume": idle and bool(self._rows),
            "stop": running,
            "stop_now": running,
            "apply": self._objective is not None,
            "export": bool(self._rows),
        }
        if can != self.panel.can:
            self.panel.can = can

    # -- commands from the panel -------------------------------------------------------------
    def command(self, message: dict[str, Any]) -> None:
        """Run one command from the front end; errors become the panel's status line."""
        cmd = message.get("cmd")
        handler = getattr(self, f"_cmd_{cmd}", None)
        if handler is None:
            self.panel.status = f"unknown command {cmd!r}"
            return
        try:
            handler(message)
        except HpoError as e:
            self.panel.status = str(e)
        except Exception as e:  # the panel must keep working
            self.panel.status = f"{cmd} failed: {one_line(e)}"

    def _cmd_sync(self, _message: dict[str, Any]) -> None:
        with self._lock:
            self.panel.send_rows(downsample(self._rows, SYNC_LIMIT), len(self._rows), reset=True)

    def _cmd_draft(self, message: dict[str, Any]) -> None:
        try:
            self._parse_space(message)
            self.panel.draft_error = ""
        except HpoError as e:
            self.panel.draft_error = str(e)

    def _cmd_config(self, message: dict[str, Any]) -> None:
        change = message.get("config") or {}
        editable = panel_fields()
        try:
            if not isinstance(change, dict):
                raise HpoError(
                    f"config must be a mapping of run settings to values, got {change!r:.40}"
                )
            unknown = [k for k in change if k not in editable]
            if unknown:
                raise HpoError(f"{unknown[0]!r} is not a run setting the panel edits")
            options = self._options.replace(**change)
            check_config(options, self.panel.study.get("directions") or ["minimize"])
        except HpoError as e:
            self.panel.config_error = str(e)
            return
        self._options = options
        self.panel.config_error = ""
        self.panel.config = options.panel_settings()

    def _cmd_start(self, _message: dict[str, Any]) -> None:
        self._start(self._name)

    _cmd_resume = _cmd_start

    def _cmd_stop(self, _message: dict[str, Any]) -> None:
        if self._run is not None:
            self._run.stop(graceful=True, reason="stopped from the panel")
            self.panel.status = "stopping: running trials finish first"

    def _cmd_stop_now(self, _message: dict[str, Any]) -> None:
        if self._run is not None:
            self._run.stop(reason="stopped from the panel")
            self.panel.status = "stopping now: running trials are cancelled"

    def _cmd_apply(self, message: dict[str, Any]) -> None:
        space = self._parse_space(message)
        self.panel.draft_error = ""
        history = self._dists
        incompatible = [n for n, d in space.distributions().items() if not _fits(history.get(n), d)]
        running = self._run is not None and not self._run.done
        same_shape = self._declared is None or _shape(space) == _shape(self._declared)
        if not incompatible and running and same_shape:
            assert self._run is not None
            self._run.narrow(space)
            self._keep(space)
            self.panel.status = "later trials use the edited space"
            return
        self._keep(space)
        if not incompatible and not running:
            self.panel.status = "the edited space applies from the next start"
            return
        threading.Thread(target=self._restart, args=(incompatible, running), daemon=True).start()

    def _cmd_export(self, _message: dict[str, Any]) -> None:
        folder = Path("hpo_plots") / file_name(self._name)  # a study's name is data
        self.panel.status = f"exporting the charts to {folder}/ ..."

        def export() -> None:
            try:
                paths = lifecycle.plots(self._name, folder, storage=self._url)
                self.panel.exports = [str(p) for p in paths]
                self.panel.status = f"wrote {len(paths)} files to {folder}/"
            except Exception as e:
                self.panel.status = f"export failed: {e}"

        threading.Thread(target=export, daemon=True).start()

    # -- runs --------------------------------------------------------------------------------
    def _parse_space(self, message: dict[str, Any]) -> SearchSpace:
        space = message.get("space")
        params = space.get("params") if isinstance(space, dict) else None
        if not isinstance(params, dict):
            raise HpoError("the space must be a mapping of parameter names to specs")
        space = SearchSpace.parse(params)
        if self._declared is None:
            unknown = [n for n in space.names if n not in self._dists]
            if unknown:
                raise HpoError(
                    f"parameter {unknown[0]!r} is not in the objective's code: a define-by-run "
                    "objective's parameters come from its suggest_* calls"
                )
        return space

    def _keep(self, space: SearchSpace) -> None:
        if self._declared is not None:
            self._declared = space
        else:
            self._narrowed = space
        self._show_space()

    def _restart(self, incompatible: list[str], start: bool) -> None:
        """Let the running trials finish, then go on with the new space (``start``): in a
        linked child study when the study's history cannot take it."""
        current = self._run
        if current is not None and not current.done:
            self.panel.status = "applying: waiting for the running trials to finish"
            current.stop(graceful=True, reason="the search space was edited")
            current.wait()
        name = self._name
        if incompatible:
            space = self._declared or self._narrowed
            assert space is not None
            child, carried = lifecycle.branch(name, _full(space, self._dists), self._url)
            self._name, self._parent = child, name
            self.panel.study = {**self.panel.study, "name": child, "parent": name}
            self._dists = {**self._dists, **space.distributions()}
            with self._lock:
                self._rows, self._numbers, self._complete = [], set(), 0
                self._importance_at = 0
            self.panel.top = []
            self._read()
            note = f"continued as study {child!r} ({carried} finished trials carried over): "
            note += ", ".join(incompatible) + " changed kind, log scale or choices"
        else:
            note = "restarted with the edited space"
        try:
            if start:
                self._start(self._name)
            self._set_can()
            self.panel.status = note
        except HpoError as e:
            self.panel.status = str(e)

    def _start(self, name: str) -> None:
        if self._objective is None:
            raise HpoError(f"define the objective (%%hpo_objective) to run study {name!r}")
        if self._run is not None and not self._run.done:
            raise HpoError(f"study {name!r} is running: stop it first")
        options = self._options.replace(study=name, storage=self._url)
        if self._declared is not None:
            options = options.replace(space=self._declared, narrow=None)
        elif self._narrowed is not None:
            options = options.replace(narrow=self._narrowed)
        handle = run(self._objective, options=options)
        self._follow(handle)
        self.panel.status = f"started study {name!r}"


def panel(objective: Objective | Callable[[Any], Any] | Run | str, **options: Any) -> Console:
    """The control panel of a run, an objective or the existing study of that name, with
    :func:`hpo_nb.run`'s options (:class:`~hpo_nb.engine.options.RunOptions`) as its starting
    configuration; display it in a notebook."""
    if isinstance(objective, Run):
        return console_of(objective)
    chosen = RunOptions.of(**options)
    if isinstance(objective, str):
        return Console(study=chosen.study or objective, options=chosen)
    obj = as_objective(objective)
    return Console(study=chosen.study or obj.name, objective=obj, options=chosen)


_consoles: weakref.WeakKeyDictionary[Run, Console] = weakref.WeakKeyDictionary()
_shown_in: weakref.WeakKeyDictionary[Run, int] = weakref.WeakKeyDictionary()


def console_of(handle: Run) -> Console:
    """The panel that follows ``handle`` (one per run)."""
    console = _consoles.get(handle)
    if console is None:
        console = _consoles[handle] = Console(study=handle.study.study_name, handle=handle)
    return console


def show(console: Console) -> None:
    """Display the panel; the run's end refreshes it so a saved notebook keeps the final
    state (in the output's static HTML) rather than the first one."""
    from IPython.display import display

    console._display = display(console.panel, display_id=True)


def show_run(handle: Run, execution_count: int | None = None) -> None:
    """Show the live panel of ``handle`` now (the magics do, in their cell); the cell's
    ``Out[]`` will not show it a second time."""
    show(console_of(handle))
    if execution_count is not None:
        _shown_in[handle] = execution_count


def display_run(handle: Run) -> None:
    """How IPython displays a :class:`~hpo_nb.Run`: its live panel (once per cell)."""
    from IPython import get_ipython

    count = getattr(get_ipython(), "execution_count", None)
    if count is not None and _shown_in.get(handle) == count:
        del _shown_in[handle]  # %hpo_run showed it already in this cell
        return
    show(console_of(handle))


def importance_of(rows: list[dict[str, Any]], dists: dict[str, BaseDistribution]) -> dict:
    """Parameter importances of the first objective (Optuna's default evaluator)."""
    complete = [r for r in rows if r["s"] == "complete" and r["v"] and r["v"][0] is not None]
    if len(complete) > IMPORTANCE_SAMPLE:
        complete = random.Random(len(complete)).sample(complete, IMPORTANCE_SAMPLE)
    trials = []
    for r in complete:
        params = {k: v for k, v in r["p"].items() if k in dists}
        used = {k: dists[k] for k in params}
        if all(_optuna.contains(used[k], used[k].to_internal_repr(v)) for k, v in params.items()):
            trials.append(
                optuna.trial.create_trial(value=r["v"][0], params=params, distributions=used)
            )
    with quiet(optuna.storages.InMemoryStorage.__module__):  # not "A new study created"
        study = optuna.create_study(storage=optuna.storages.InMemoryStorage())
    study.add_trials(trials)
    scores = optuna.importance.get_param_importances(study)
    return {
        "params": [[k, float(v)] for k, v in scores.items()],
        "at": len(rows),
        "evaluator": "PedAnovaImportanceEvaluator (Optuna's default)",
    }


def check_config(options: RunOptions, directions: list[str]) -> None:
    """One-line errors for run settings the panel sent (RunOptions checked each value)."""
    if options.n_trials is None:
        raise HpoError("n_trials is missing: give the number of finished trials to reach")
    if isinstance(options.sampler, str):
        make_sampler(options.sampler, None, options.sampler_options)
    if isinstance(options.pruner, str):
        make_pruner(options.pruner, options.pruner_options)
    if options.patience is not None and len(directions) > 1:
        raise HpoError("patience needs a single objective (the best value must be one number)")


def _starting_options(given: RunOptions, recorded: Mapping[str, Any], fresh: bool) -> RunOptions:
    """What the panel starts with: ``given`` (a run's, or the flags), over what the study
    recorded (when the panel opens a study), with a target in any case."""
    if fresh:
        with contextlib.suppress(HpoError):  # a record this version cannot read: not used
            given = RunOptions.from_json(recorded).replace(**given.changed())
    return given if given.n_trials is not None else given.replace(n_trials=DEFAULT_TARGET)


def _options() -> dict[str, Any]:
    """The ``options`` trait (``panel_protocol.Options``): the pickers' choices and the run
    settings the panel shows as inputs (``panel_protocol.ConfigField``, in display order)."""
    defaults = RunOptions()
    fields = [
        {
            "name": name,
            "label": spec.panel,
            "kind": spec.panel_kind,
            "min": spec.minimum,
            "nullable": getattr(defaults, name) is None,
            "help": spec.help,
        }
        for name, spec in panel_fields().items()
        if spec.panel_kind != "picker"
    ]
    choices = {"samplers": list(SAMPLERS), "pruners": list(PRUNERS)}
    return {**choices, **main_options(), "fields": fields}


def _progress_json(progress: Progress) -> dict[str, Any]:
    data = progress.to_json()
    done_here = progress.finished - progress.finished_before
    minutes = progress.elapsed / 60
    data["per_minute"] = done_here / minutes if minutes > 0 and done_here > 0 else None
    return data


def _idle(
    name: str, target: int, directions: tuple[str, ...], counts: dict[str, int] | None = None
) -> dict[str, Any]:
    """The progress of a study no run of this panel is running."""
    counts = counts or {}
    progress = Progress(
        study=name,
        target=target,
        directions=directions,
        ended_at=time.time(),
        complete=counts.get("complete", 0),
        pruned=counts.get("pruned", 0),
        failed=counts.get("failed", 0),
    )
    data = {**_progress_json(progress), "state": "idle", "per_minute": None}
    data["started_at"] = data["ended_at"]
    data["summary"] = data["summary"].replace(f"[{progress.state.value}]", "[idle]")
    return data


def _pareto(rows: list[dict[str, Any]], directions: list[str]) -> list[dict[str, Any]]:
    """The rows no other row dominates in every objective, best first in the first objective.
    The panel's Pareto chart marks these (the ``top`` trait); it computes no front itself."""
    signs = [-1 if d == "maximize" else 1 for d in directions]
    keyed = [(tuple(s * v for s, v in zip(signs, r["v"], strict=False)), r) for r in rows]

    def dominated(a: tuple[float, ...]) -> bool:
        return any(all(x <= y for x, y in zip(b, a, strict=False)) and b != a for b, _ in keyed)

    return sorted((r for k, r in keyed if not dominated(k)), key=lambda r: signs[0] * r["v"][0])


def _fits(old: BaseDistribution | None, new: BaseDistribution) -> bool:
    if old is None:
        return True
    try:
        check_distribution_compatibility(old, new)
    except ValueError:
        return False
    return True


def _shape(space: SearchSpace) -> list[tuple[str, Any]]:
    return [(p.name, p.to_dict().get("when")) for p in space]


def _full(space: SearchSpace, dists: dict[str, BaseDistribution]) -> SearchSpace:
    """``space`` with the study's other parameters as they are (a child study needs all)."""
    rest = {n: spec_of(d) for n, d in dists.items() if n not in space.names}
    return SearchSpace.from_dict({**rest, **space.to_dict()})

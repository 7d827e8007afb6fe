"""A study's whole life from any kernel: list, status, stop, resume, best, export, delete.

Everything here reads the storage (and the hpo_nb record kept there), so it is right from
another kernel and after a restart. The magics are thin wrappers over these functions.
"""

from __future__ import annotations

import csv
import dataclasses
import html
import itertools
import json
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy
from optuna.storages import RDBStorage
from optuna.trial import FrozenTrial, TrialState

from hpo_nb import _optuna
from hpo_nb._errors import HpoError
from hpo_nb._optuna import FrozenStudy
from hpo_nb._settings import settings
from hpo_nb.engine.options import RunOptions
from hpo_nb.engine.records import (
    CONFIG_KEY,
    FAIL_REASON_KEY,
    RECORD_KEY,
    STOP_KEY,
    Owner,
    effective_state,
    session,
)
from hpo_nb.engine.run import Run, find_run, run
from hpo_nb.io.archive import read_archive, restore_archive, write_archive
from hpo_nb.io.plots import FORMATS, export_plots
from hpo_nb.io.storage import display_url, open_storage, storage_url
from hpo_nb.search.objective import Objective
from hpo_nb.search.space import SearchSpace

__all__ = [
    "StudyInfo",
    "StudyList",
    "best",
    "branch",
    "delete",
    "export",
    "export_archive",
    "import_archive",
    "plots",
    "recorded_config",
    "resume",
    "status",
    "stop",
    "studies",
]

_COUNT_SQL = sqlalchemy.text(
    "SELECT state, COUNT(*), MAX(datetime_complete), MAX(datetime_start) FROM trials "
    "WHERE study_id = :study_id GROUP BY state"
)


@dataclasses.dataclass(frozen=True)
class StudyInfo:
    """One study as the storage tells it now."""

    name: str
    state: str
    reason: str
    directions: tuple[str, ...]
    complete: int
    pruned: int
    failed: int
    running: int
    best_value: float | None
    best_number: int | None
    sampler: str
    last_activity: str
    storage: str
    resources: tuple[dict[str, Any], ...] = ()  # each worker, when it runs in this kernel
    events: tuple[str, ...] = ()

    @property
    def finished(self) -> int:
        return self.complete + self.pruned + self.failed

    def line(self) -> str:
        best = "-" if self.best_value is None else f"{self.best_value:.6g}"
        return (
            f"{self.name}: {self.state}"
            + (f" ({self.reason})" if self.reason else "")
            + f", {self.finished} finished ({self.complete} complete, {self.pruned} pruned, "
            f"{self.failed} failed), {self.running} running, best {best}"
        )

    def __repr__(self) -> str:
        where = f"sampler {self.sampler or '-'}; last activity {self.last_activity or '-'}"
        lines = [self.line(), f"{where}; storage {self.storage}"]
        for w in self.resources:
            gpu = (
                f", GPU {w['gpu_utilization']}% {w.get('gpu_memory_used', 0) / 2**30:.1f} GiB"
                if w.get("gpu_utilization") is not None
                else ""
            )
            trial = f"trial {w['trial']}" if w.get("trial") is not None else "idle"
            lines.append(
                f"  worker {w['worker']}: {trial}, CPU {w['cpu']:.0f}%, "
                f"RSS {w['rss'] / 2**20:.0f} MiB{gpu}"
            )
        lines += [f"  {event}" for event in self.events[-5:]]
        return "\n".join(lines)


_COLUMNS = ["study", "state", "finished", "pruned", "failed", "best", "sampler", "last activity"]


class StudyList(list[StudyInfo]):
    """The studies of a storage; a table in a notebook and in a terminal."""

    def _rows(self) -> list[list[str]]:
        return [
            [
                s.name,
                s.state,
                str(s.finished),
                str(s.pruned),
                str(s.failed),
                "-" if s.best_value is None else f"{s.best_value:.6g}",
                s.sampler or "-",
                s.last_activity or "-",
            ]
            for s in self
        ]

    def __repr__(self) -> str:
        if not self:
            return "no studies"
        rows = [_COLUMNS, *self._rows()]
        widths = [max(len(r[i]) for r in rows) for i in range(len(_COLUMNS))]
        return "\n".join(
            "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows
        )

    def _repr_html_(self) -> str:
        if not self:
            return "<p>no studies</p>"
        head = "".join(f"<th>{html.escape(c)}</th>" for c in _COLUMNS)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
            for row in self._rows()
        )
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _storage(
    storage: str | None, name: str | None = None, *, create: bool = False
) -> tuple[RDBStorage, str]:
    """The storage to look in: ``storage``, else where this kernel last ran ``name``."""
    if storage is None and name is not None:
        known = find_run(name)
        if known is not None:
            storage = known.storage_url
    url = storage_url(storage)
    return open_storage(url, create=create), url


def _study_id(rdb: RDBStorage, name: str, url: str) -> int:
    try:
        return rdb.get_study_id_from_name(name)
    except KeyError:
        known = ", ".join(sorted(s.study_name for s in rdb.get_all_studies())) or "none"
        raise HpoError(
            f"no study {name!r} in {display_url(url)} (studies there: {known}); "
            "pass --storage if it lives elsewhere"
        ) from None


def _info(rdb: RDBStorage, study: FrozenStudy, url: str) -> StudyInfo:
    study_id = _optuna.study_id(study)
    counts: dict[str, int] = {}
    last = ""
    with rdb.engine.connect() as conn:
        for state, n, completed, started in conn.execute(_COUNT_SQL, {"study_id": study_id}):
            counts[str(state)] = int(n)
            for stamp in (completed, started):
                if stamp is not None and str(stamp) > last:
                    last = str(stamp)[:19]
    record = study.system_attrs.get(RECORD_KEY) or {}
    state, reason = effective_state(record, settings.stale_grace) if record else ("-", "")
    if state == "running":
        last = "now"
    best_value = best_number = None
    directions = tuple(d.name.lower() for d in study.directions)
    if len(directions) == 1 and counts.get("COMPLETE"):
        best_trial = rdb.get_best_trial(study_id)
        best_value, best_number = best_trial.value, best_trial.number
    sampler = record.get("sampler") or (study.system_attrs.get(CONFIG_KEY) or {}).get("sampler")
    return StudyInfo(
        name=study.study_name,
        state=state,
        reason=reason,
        directions=directions,
        complete=counts.get("COMPLETE", 0),
        pruned=counts.get("PRUNED", 0),
        failed=counts.get("FAIL", 0),
        running=counts.get("RUNNING", 0),
        best_value=best_value,
        best_number=best_number,
        sampler=str(sampler or ""),
        last_activity=last,
        storage=display_url(url),
    )


def _run_info(local: Run) -> StudyInfo:
    """What this kernel knows of its run of a study."""
    p = local.progress
    return StudyInfo(
        name=p.study,
        state=p.state.value,
        reason=p.reason,
        directions=p.directions,
        complete=p.complete,
        pruned=p.pruned,
        failed=p.failed,
        running=p.running,
        best_value=p.best_value,
        best_number=p.best_number,
        sampler=p.sampler,
        last_activity="its storage does not answer: as this kernel knows it",
        storage=display_url(local.storage_url),
        events=p.events,
    )


def studies(storage: str | None = None) -> StudyList:
    """Every study in ``storage`` (default: ``hpo.db``) with its state, counts and best value."""
    rdb, url = _storage(storage)
    return StudyList(_info(rdb, s, url) for s in rdb.get_all_studies())


def status(name: str, storage: str | None = None) -> StudyInfo:
    """One study's state, counts, best value and sampler, from the storage (from this
    kernel's run of it while its storage does not answer)."""
    try:
        rdb, url = _storage(storage, name)
    except HpoError:
        local = find_run(name)
        if local is None or local.storage_url != storage_url(storage or local.storage_url):
            raise
        return _run_info(local)
    study_id = _study_id(rdb, name, url)
    (frozen,) = [s for s in rdb.get_all_studies() if _optuna.study_id(s) == study_id]
    info = _info(rdb, frozen, url)
    local = find_run(name)
    if local is not None and local.storage_url == url:
        progress = local.progress
        resources = progress.resources if not local.done else ()
        info = dataclasses.replace(info, resources=resources, events=progress.events)
        owner = Owner.from_json((frozen.system_attrs.get(RECORD_KEY) or {}).get("owner"))
        if local.done and owner == session():  # known here before the storage may know it
            info = dataclasses.replace(info, state=progress.state.value, reason=progress.reason)
    return info


def stop(name: str, storage: str | None = None, *, now: bool = False) -> str:
    """Stop study ``name`` wherever it runs: in this kernel directly, elsewhere through the
    storage (its kernel obeys within a second or two). Returns what was done, in words."""
    local = find_run(name)
    if (
        local is not None
        and not local.done
        and (storage is None or storage_url(storage) == local.storage_url)
    ):
        local.stop(graceful=not now)
        return f"stopping {name!r} {'now' if now else 'after its running trials'}"
    rdb, url = _storage(storage, name)
    study_id = _study_id(rdb, name, url)
    record = rdb.get_study_system_attrs(study_id).get(RECORD_KEY) or {}
    state, _ = effective_state(record, settings.stale_grace)
    if state not in ("running", "starting", "stopping"):
        raise HpoError(f"study {name!r} is not running (state: {state})")
    me = session()
    rdb.set_study_system_attr(
        study_id, STOP_KEY, {"now": now, "time": time.time(), "by": f"pid {me.pid} on {me.host}"}
    )
    return f"asked the kernel running {name!r} to stop {'now' if now else 'gracefully'}"


def recorded_config(name: str, storage: str | None = None) -> dict[str, Any]:
    """What study ``name`` was last run with ({} for a study hpo_nb did not run, or none)."""
    try:
        rdb, _ = _storage(storage, name)
        study_id = rdb.get_study_id_from_name(name)
    except (KeyError, HpoError):  # no such study, or no database: nothing recorded
        return {}
    return dict(rdb.get_study_system_attrs(study_id).get(CONFIG_KEY) or {})


def resume(
    name: str,
    objectives: Mapping[str, Objective | Callable[[Any], Any]],
    *,
    storage: str | None = None,
    **changes: Any,
) -> Run:
    """Run study ``name`` again with the options it was last run with (see
    :class:`~hpo_nb.engine.options.RunOptions`), ``changes`` (options too) applied over them."""
    rdb, url = _storage(storage, name)
    study_id = _study_id(rdb, name, url)
    config = rdb.get_study_system_attrs(study_id).get(CONFIG_KEY) or {}
    objective_name = config.get("objective")
    if objective_name is None:
        raise HpoError(f"study {name!r} was not started by hpo_nb: run it with %hpo_run")
    objective = objectives.get(objective_name)
    if objective is None:
        raise HpoError(
            f"study {name!r} runs objective {objective_name!r}: define it "
            f"(%%hpo_objective {objective_name}) before resuming"
        )
    try:
        recorded = RunOptions.from_json(config)
    except HpoError as e:
        raise HpoError(
            f"study {name!r} recorded options this version cannot run ({e}): "
            "start it again with %hpo_run and its options"
        ) from None
    options = recorded.replace(**changes, study=name, storage=url)
    if options.n_trials is None:
        raise HpoError(f"study {name!r} has no recorded target: pass --n-trials")
    return run(objective, options=options)


def best(name: str, storage: str | None = None) -> dict[str, Any] | list[dict[str, Any]]:
    """The best parameters (one objective) or the Pareto front (several): number, values,
    params of each trial on it."""
    rdb, url = _storage(storage, name)
    _study_id(rdb, name, url)
    study = optuna.load_study(study_name=name, storage=rdb)
    try:
        if len(study.directions) == 1:
            return dict(study.best_params)
        return [
            {"number": t.number, "values": list(t.values), "params": dict(t.params)}
            for t in study.best_trials
        ]
    except ValueError:
        raise HpoError(f"study {name!r} has no complete trial yet") from None


def _table(trials: list[FrozenTrial], n_objectives: int) -> list[dict[str, Any]]:
    params = list(dict.fromkeys(p for t in trials for p in t.params))
    attrs = list(dict.fromkeys(a for t in trials for a in t.user_attrs))
    value_columns = ["value"] if n_objectives == 1 else [f"value_{i}" for i in range(n_objectives)]
    rows = []
    for t in trials:
        duration = (
            (t.datetime_complete - t.datetime_start).total_seconds()
            if t.datetime_complete and t.datetime_start
            else None
        )
        values = t.values or [None] * n_objectives
        row: dict[str, Any] = {"number": t.number, "state": t.state.name}
        row.update(zip(value_columns, values, strict=True))
        row.update(
            datetime_start=t.datetime_start.isoformat() if t.datetime_start else None,
            datetime_complete=t.datetime_complete.isoformat() if t.datetime_complete else None,
            duration_s=duration,
        )
        row.update({f"params_{p}": t.params.get(p) for p in params})
        row.update({f"user_attrs_{a}": _scalar(t.user_attrs.get(a)) for a in attrs})
        row["fail_reason"] = t.system_attrs.get(FAIL_REASON_KEY)
        rows.append(row)
    return rows


def _scalar(value: Any) -> Any:
    return json.dumps(value) if isinstance(value, (dict, list)) else value


def export(name: str, path: str | Path, format: str, storage: str | None = None) -> Path:
    """Write the best configuration (``json``, ready for training) or the full trials table
    (``csv``, ``parquet``) to ``path``."""
    if format not in ("json", "csv", "parquet"):
        raise HpoError(f"unknown export format {format!r}: choose json, csv or parquet")
    out = Path(path)
    if not out.parent.is_dir():
        raise HpoError(f"cannot write {out}: folder {out.parent} does not exist")
    if format == "json":
        out.write_text(json.dumps(best(name, storage), indent=2, default=str) + "\n")
        return out
    rdb, url = _storage(storage, name)
    _study_id(rdb, name, url)
    study = optuna.load_study(study_name=name, storage=rdb)
    rows = _table(study.get_trials(deepcopy=False), len(study.directions))
    if format == "csv":
        with out.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["number"])
            writer.writeheader()
            writer.writerows(rows)
        return out
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError:
        raise HpoError("parquet export needs pyarrow: pip install pyarrow") from None
    pyarrow.parquet.write_table(pyarrow.Table.from_pylist(rows), out)
    return out


def plots(
    name: str, directory: str | Path, formats: Iterable[str] = FORMATS, storage: str | None = None
) -> list[Path]:
    """Write every chart of study ``name`` (history, importance, ...) to ``directory`` as
    ``png``, ``svg`` and standalone ``html``; returns the files written.

    >>> hpo_nb.plots("quad", "plots", ["png"])  # doctest: +SKIP
    """
    rdb, url = _storage(storage, name)
    _study_id(rdb, name, url)
    study = optuna.load_study(study_name=name, storage=rdb)
    return export_plots(study, directory, formats)


def export_archive(name: str, path: str | Path, storage: str | None = None) -> Path:
    """Write study ``name`` and every trial (all states, attributes, intermediate values) to
    one compressed, lossless archive file; :func:`import_archive` re-creates it anywhere.

    >>> hpo_nb.export_archive("quad", "quad.zip")  # doctest: +SKIP
    """
    rdb, url = _storage(storage, name)
    return write_archive(rdb, _study_id(rdb, name, url), path)


def import_archive(path: str | Path, storage: str | None = None, study: str | None = None) -> str:
    """Re-create the study archived in ``path`` (under the name ``study``, default its own)
    in ``storage`` (default: ``hpo.db``) with identical trials; returns the study's name.

    >>> hpo_nb.import_archive("quad.zip", "sqlite:///other.db", study="quad-copy")  # doctest: +SKIP
    'quad-copy'
    """
    if study is not None and not study.strip():
        raise HpoError("the study name is empty: give --study a name, or leave it out")
    archive = read_archive(path)
    rdb, _ = _storage(storage, create=True)
    name = study or archive.study_name
    restore_archive(archive, rdb, name)
    return name


def delete(name: str, storage: str | None = None) -> None:
    """Delete study ``name`` and all its trials (refused while it runs)."""
    local = find_run(name)
    if local is not None and not local.done:
        raise HpoError(f"study {name!r} is running in this kernel: stop it first")
    rdb, url = _storage(storage, name)
    study_id = _study_id(rdb, name, url)
    record = rdb.get_study_system_attrs(study_id).get(RECORD_KEY) or {}
    if effective_state(record, settings.stale_grace)[0] in ("running", "stopping"):
        raise HpoError(f"study {name!r} is running in another kernel: %hpo_stop it first")
    rdb.delete_study(study_id)


PARENT_KEY = "hpo_nb:parent"


def branch(name: str, space: SearchSpace, storage: str | None = None) -> tuple[str, int]:
    """A linked child of study ``name`` for a space its history is incompatible with (a
    parameter changed kind, log scale or choices): a new study ``name-K`` that records its
    parent and holds every finished trial that still fits ``space``. Returns its name and how
    many trials it carried over."""
    rdb, url = _storage(storage, name)
    parent_id = _study_id(rdb, name, url)
    taken = {s.study_name for s in rdb.get_all_studies()}
    child = next(f"{name}-{k}" for k in itertools.count(2) if f"{name}-{k}" not in taken)
    parent = optuna.load_study(study_name=name, storage=rdb)
    new = space.distributions()
    params = {p.name: p for p in space}
    fitting = [
        optuna.trial.create_trial(
            state=t.state,
            values=t.values,
            params=t.params,
            distributions={k: new.get(k, d) for k, d in t.distributions.items()},
            user_attrs=t.user_attrs,
            system_attrs={**t.system_attrs, PARENT_KEY: {"study": name, "number": t.number}},
            intermediate_values=t.intermediate_values,
        )
        for t in parent.get_trials(deepcopy=False, states=_FINISHED)
        if all(k not in params or params[k].can_take(v) for k, v in t.params.items())
    ]
    study = optuna.create_study(
        study_name=child, storage=rdb, directions=parent.directions, load_if_exists=False
    )
    study.add_trials(fitting)
    attrs = rdb.get_study_system_attrs(parent_id)
    if CONFIG_KEY in attrs:
        rdb.set_study_system_attr(_optuna.study_id(study), CONFIG_KEY, attrs[CONFIG_KEY])
    rdb.set_study_system_attr(_optuna.study_id(study), PARENT_KEY, name)
    return child, len(fitting)


_FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)

"""A whole study in one compressed, lossless file, and back into any storage.

An archive is a ZIP file (any unzip tool opens it) with five members:

- ``archive.json``: the format and its version, the study (name, directions, user and system
  attributes), the distinct parameter distributions (Optuna's distribution JSON) and counts.
- ``trials.jsonl``: one JSON object per trial, in number order: ``number``, ``state``,
  ``values``, ``datetime_start`` and ``datetime_complete`` (ISO 8601, UTC), ``params`` (each
  ``name: [value, index of its distribution]``, the value in Optuna's internal representation,
  as its storage keeps it: the float itself, or the index of a categorical choice),
  ``user_attrs``, ``system_attrs``. Floats are written exactly (Python's shortest repr);
  ``NaN`` and ``Infinity`` as Python's ``json`` writes them, as Optuna's storage does.
- ``intermediate_trial.npy``, ``intermediate_step.npy``: NumPy arrays of the trial number and
  the step of each intermediate value; ``intermediate_value.npy``: the values, as the 8 byte
  planes (8 x n ``uint8``) of their little-endian float64 bits, which compress about 15%
  better than the values side by side: ``planes.T.copy().view("<f8")`` gives them back, bit
  for bit (NaN included).

From an SQL storage, trials are read and written with SQLAlchemy Core straight from and into
Optuna's tables, as stored (UTC datetimes, internal parameter values, distribution JSON):
Optuna's ``get_all_trials`` takes about 17 s for 10,000 trials of 50 intermediate values, and
``add_trials`` some 60 queries and a commit per trial (90 s per 1,000). An import is one
transaction: it is whole, or it leaves nothing.

An import keeps only the system attributes that are plain data hpo_nb and Optuna read as such
(:data:`KEPT_SYSTEM_ATTRS`): hpo_nb's own (``hpo_nb:*``), enqueued values (``fixed_params``),
constraints, the grid sampler's, genetic samplers' generations (``*:generation``), TPE's
and GP's relative parameters, and CMA-ES with margin's ``x_for_tell`` (plain floats, which
the CMA-ES sampler replays its optimizer from). Others are dropped, above all Optuna's
CMA-ES optimizer (``cma:optimizer:*``), which its sampler unpickles: an archive must not be
able to run code.

Nor may it take the kernel's memory: before anything is read, the ZIP's declared sizes are
checked (only the five members, each at most the size the header's counts imply for the
arrays, expanding no more than deflate can, all within :data:`MAX_SIZE`), and every member
is then read through ``zf.open`` with a cap, the arrays' ``.npy`` headers checked before
their data.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import datetime
import functools
import json
import math
import os
import zipfile
import zlib
from collections.abc import Iterator, Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import sqlalchemy
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    distribution_to_json,
    json_to_distribution,
)
from optuna.storages import BaseStorage, RDBStorage
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from hpo_nb import _optuna
from hpo_nb._errors import HpoError
from hpo_nb.io.storage import display_url

__all__ = [
    "FORMAT",
    "KEPT_SYSTEM_ATTRS",
    "VERSION",
    "Archive",
    "load_trials",
    "read_archive",
    "restore_archive",
    "write_archive",
]

FORMAT = "hpo_nb study archive"
VERSION = 1

_HEADER = "archive.json"
_TRIALS = "trials.jsonl"
_IV_TRIAL = "intermediate_trial.npy"
_IV_STEP = "intermediate_step.npy"
_IV_VALUE = "intermediate_value.npy"
_UTC = datetime.timezone.utc
_TABLES = _optuna.BaseModel.metadata.tables


@dataclasses.dataclass(frozen=True)
class Archive:
    """What an archive holds; ``trials`` gives Optuna's ``FrozenTrial`` of each trial.

    >>> hpo_nb.read_archive("quad.zip").trials[0].params  # doctest: +SKIP
    {'x': 1.93}
    """

    study_name: str
    directions: list[StudyDirection]
    user_attrs: dict[str, Any]
    system_attrs: dict[str, Any]
    distributions: list[str]  # Optuna's distribution JSON, as stored
    records: list[dict[str, Any]]  # trials.jsonl: one dict per trial
    intermediate: tuple[np.ndarray, np.ndarray, np.ndarray]  # trial number, step, value
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)  # who wrote it, when

    def __repr__(self) -> str:
        return f"<Archive of study {self.study_name!r}: {len(self.records)} trials>"

    @property
    def trials(self) -> list[FrozenTrial]:
        """Every trial as Optuna shows it (datetimes in local time, ``_trial_id`` = number)."""
        curve = zip(*(a.tolist() for a in self.intermediate), strict=True)
        return _frozen(self.records, self.distributions, curve)


def _frozen(
    records: Sequence[dict[str, Any]],
    distributions: Sequence[str],
    intermediate: Any,
    trial_ids: Sequence[int] | None = None,
) -> list[FrozenTrial]:
    """Optuna's trials from archive records and (number, step, value) triples."""
    dists = [json_to_distribution(d) for d in distributions]
    curves: dict[int, dict[int, float]] = collections.defaultdict(dict)
    for number, step, value in intermediate:
        curves[number][step] = value
    ids = trial_ids if trial_ids is not None else [r["number"] for r in records]
    return [
        FrozenTrial(
            number=r["number"],
            state=TrialState[r["state"]],
            value=None,
            values=r["values"],
            datetime_start=_local(r["datetime_start"]),
            datetime_complete=_local(r["datetime_complete"]),
            params={k: dists[i].to_external_repr(v) for k, (v, i) in r["params"].items()},
            distributions={k: dists[i] for k, (_, i) in r["params"].items()},
            user_attrs=r["user_attrs"],
            system_attrs=r["system_attrs"],
            intermediate_values=curves.get(r["number"], {}),
            trial_id=trial_id,
        )
        for r, trial_id in zip(records, ids, strict=True)
    ]


@contextlib.contextmanager
def _snapshot(rdb: RDBStorage) -> Iterator[sqlalchemy.Connection]:
    """A connection whose reads all see one snapshot of the database (a study may be running)."""
    with rdb.engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("BEGIN")  # Python's sqlite3 begins no transaction to read
        else:
            conn.execution_options(isolation_level="REPEATABLE READ")
        yield conn


def _heads(study_id: int) -> sqlalchemy.Select:
    """A study's trials (id, number, state, start, end), in number order."""
    trials = _TABLES["trials"]
    columns = ("trial_id", "number", "state", "datetime_start", "datetime_complete")
    return (
        sqlalchemy.select(*(trials.c[c] for c in columns))
        .where(trials.c.study_id == study_id)
        .order_by(trials.c.number, trials.c.trial_id)
    )


def load_trials(rdb: RDBStorage, study_id: int) -> Iterator[FrozenTrial]:
    """Every trial of a study, in number order, as ``RDBStorage.get_all_trials`` gives them but
    about ten times faster (plain queries instead of ORM objects), all from one snapshot of the
    database (the study may be running).

    A generator: the trials are read and built ``_CHUNK`` at a time, so what a caller keeps of
    them is never held twice, and the load itself holds little more than one chunk."""
    with _snapshot(rdb) as conn:
        heads = conn.execute(_heads(study_id)).all()
        distributions: dict[str, BaseDistribution] = {}  # JSON -> one shared object
        for start in range(0, len(heads), _CHUNK):
            yield from _load_chunk(conn, heads[start : start + _CHUNK], distributions)


_CHUNK = 500  # trials a load reads and builds at a time
_FINITE = "FINITE"  # the stored kind of a finite value, intermediate or not


def _select(
    conn: sqlalchemy.Connection, ids: list[int], table: str, *columns: str, order: str
) -> list[tuple[Any, ...]]:
    """``columns`` of ``table`` for the trials ``ids``, by trial and ``order``."""
    t = _TABLES[table]
    query = (
        sqlalchemy.select(t.c.trial_id, *(t.c[c] for c in columns))
        .where(t.c.trial_id.in_(ids))
        .order_by(t.c.trial_id, t.c[order])
    )
    # The rows as the driver gives them, on the load's connection (in its snapshot): ids,
    # floats and strings, the kind of a value its stored name. SQLAlchemy's Row objects
    # would take as long as reading the rows, and the intermediate values are the bulk of
    # a study (50 a trial are common). The trial ids, integers, are written into the SQL.
    cursor = conn.connection.cursor()
    try:
        cursor.execute(str(query.compile(conn, compile_kwargs={"literal_binds": True})))
        return list(cursor.fetchall())
    finally:
        cursor.close()


def _load_chunk(
    conn: sqlalchemy.Connection,
    heads: Sequence[Sequence[Any]],
    distributions: dict[str, BaseDistribution],
) -> list[FrozenTrial]:
    """The trials of ``heads`` (trial_id, number, state, datetimes) with everything they hold;
    ``distributions`` (distribution JSON -> object) is shared by the chunks of a load."""
    ids = [head[0] for head in heads]
    of_chunk = functools.partial(_select, conn, ids)

    params: dict[int, dict[str, Any]] = {i: {} for i in ids}
    dists: dict[int, dict[str, BaseDistribution]] = {i: {} for i in ids}
    for trial_id, name, value, text in of_chunk(
        "trial_params", "param_name", "param_value", "distribution_json", order="param_id"
    ):
        dist = distributions.get(text)
        if dist is None:
            dist = distributions[text] = json_to_distribution(text)
        params[trial_id][name] = dist.to_external_repr(value)
        dists[trial_id][name] = dist
    values: dict[int, list[float]] = {}
    value_kind = _optuna.TrialValueModel.TrialValueType
    to_value = _optuna.TrialValueModel.stored_repr_to_value
    for trial_id, value, kind in of_chunk("trial_values", "value", "value_type", order="objective"):
        value = value if kind == _FINITE else to_value(value, value_kind[kind])
        values.setdefault(trial_id, []).append(value)
    user_attrs: dict[int, dict[str, Any]] = {i: {} for i in ids}
    for trial_id, key, text in of_chunk(
        "trial_user_attributes", "key", "value_json", order="trial_user_attribute_id"
    ):
        user_attrs[trial_id][key] = json.loads(text)
    system_attrs: dict[int, dict[str, Any]] = {i: {} for i in ids}
    for trial_id, key, text in of_chunk(
        "trial_system_attributes", "key", "value_json", order="trial_system_attribute_id"
    ):
        system_attrs[trial_id][key] = json.loads(text)
    curves: dict[int, dict[int, float]] = {i: {} for i in ids}
    iv_kind = _optuna.TrialIntermediateValueModel.TrialIntermediateValueType
    to_iv = _optuna.TrialIntermediateValueModel.stored_repr_to_intermediate_value
    for trial_id, step, value, kind in of_chunk(
        "trial_intermediate_values",
        "step",
        "intermediate_value",
        "intermediate_value_type",
        order="trial_intermediate_value_id",
    ):
        curves[trial_id][step] = value if kind == _FINITE else to_iv(value, iv_kind[kind])
    return [
        FrozenTrial(
            number=number,
            state=state,
            value=None,
            values=values.get(trial_id),
            datetime_start=_local_from_stored(start),
            datetime_complete=_local_from_stored(complete),
            params=params[trial_id],
            distributions=dists[trial_id],
            user_attrs=user_attrs[trial_id],
            system_attrs=system_attrs[trial_id],
            intermediate_values=curves[trial_id],
            trial_id=trial_id,
        )
        for trial_id, number, state, start, complete in heads
    ]


def _local_from_stored(moment: datetime.datetime | None) -> datetime.datetime | None:
    # RDBStorage keeps naive UTC; Optuna shows naive local time.
    if moment is None:
        return None
    return moment.replace(tzinfo=_UTC).astimezone().replace(tzinfo=None)


@dataclasses.dataclass
class _Rows:
    """A study's trials in the archive's shape, whichever storage they came from."""

    records: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    distributions: dict[str, int] = dataclasses.field(default_factory=dict)  # JSON -> index
    numbers: list[int] = dataclasses.field(default_factory=list)  # of the intermediate values
    steps: list[int] = dataclasses.field(default_factory=list)
    values: list[float] = dataclasses.field(default_factory=list)
    trial_ids: list[int] = dataclasses.field(default_factory=list)  # of the records (tables)

    def param(self, value: float, distribution_json: str) -> list[Any]:
        index = self.distributions.setdefault(distribution_json, len(self.distributions))
        return [value, index]


# -- writing -----------------------------------------------------------------------------------
def write_archive(storage: BaseStorage, study_id: int, path: str | Path) -> Path:
    """Write a study of ``storage`` (any Optuna storage) and all its trials, RUNNING and
    WAITING ones as they are, to the archive ``path``; an existing file is replaced only once
    the new one is complete.

    >>> rdb = optuna.storages.RDBStorage("sqlite:///hpo.db")
    >>> write_archive(rdb, rdb.get_study_id_from_name("quad"), "quad.zip")  # doctest: +SKIP
    """
    out = Path(path)
    if not out.parent.is_dir():
        raise HpoError(f"cannot write {out}: folder {out.parent} does not exist")
    if out.is_dir():
        raise HpoError(f"cannot write {out}: it is a folder; give a file name")
    if isinstance(storage, RDBStorage):
        rows = _from_tables(storage, study_id)
    else:
        rows = _from_trials(storage.get_all_trials(study_id, deepcopy=False))
    name = storage.get_study_name_from_id(study_id)
    numbers = [r["number"] for r in rows.records]
    if len(set(numbers)) != len(numbers):
        raise HpoError(f"study {name!r} has several trials with the same number: cannot archive it")
    header = {
        "format": FORMAT,
        "version": VERSION,
        "study": {
            "name": name,
            "directions": [d.name for d in storage.get_study_directions(study_id)],
            "user_attrs": storage.get_study_user_attrs(study_id),
            "system_attrs": storage.get_study_system_attrs(study_id),
        },
        "distributions": list(rows.distributions),
        "n_trials": len(rows.records),
        "n_intermediate_values": len(rows.values),
        "written_by": {"hpo_nb": _version("hpo_nb"), "optuna": optuna.__version__},
        "written_at": datetime.datetime.now(_UTC).isoformat(timespec="seconds"),
    }
    values = np.array(rows.values, dtype="<f8")
    arrays = {
        _IV_TRIAL: np.array(rows.numbers, dtype="<i8"),
        _IV_STEP: np.array(rows.steps, dtype="<i8"),
        _IV_VALUE: values.view(np.uint8).reshape(-1, 8).T.copy(),
    }
    lines = "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in rows.records)
    partial = out.with_name(f".{out.name}.{os.getpid()}.partial")
    try:
        with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
            zf.writestr(_HEADER, json.dumps(header, indent=1) + "\n")
            zf.writestr(_TRIALS, lines)
            for member, array in arrays.items():
                with zf.open(member, "w") as f:
                    np.save(f, array, allow_pickle=False)
        os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)
    return out


def _record(number: int, state: TrialState, start: str | None, complete: str | None) -> dict:
    return {
        "number": number,
        "state": state.name,
        "values": None,
        "datetime_start": start,
        "datetime_complete": complete,
        "params": {},
        "user_attrs": {},
        "system_attrs": {},
    }


def _from_trials(trials: Sequence[FrozenTrial]) -> _Rows:
    rows = _Rows()
    for t in sorted(trials, key=lambda t: t.number):
        record = _record(t.number, t.state, _utc(t.datetime_start), _utc(t.datetime_complete))
        for name, value in t.params.items():
            dist = t.distributions[name]
            record["params"][name] = rows.param(
                float(dist.to_internal_repr(value)), distribution_to_json(dist)
            )
        record.update(values=t.values, user_attrs=t.user_attrs, system_attrs=t.system_attrs)
        rows.records.append(record)
        rows.numbers += [t.number] * len(t.intermediate_values)
        rows.steps += t.intermediate_values.keys()
        rows.values += t.intermediate_values.values()
    return rows


def _from_tables(rdb: RDBStorage, study_id: int) -> _Rows:
    """The study's rows as stored, in six queries that see one snapshot of the database (the
    study may be running), in trial number order."""
    trials = _TABLES["trials"]

    def of_study(table: str, *columns: str, order: str) -> sqlalchemy.Select:
        t = _TABLES[table]
        return (
            sqlalchemy.select(t.c.trial_id, *(t.c[c] for c in columns))
            .join(trials, trials.c.trial_id == t.c.trial_id)
            .where(trials.c.study_id == study_id)
            .order_by(trials.c.number, t.c[order])
        )

    rows = _Rows()
    by_id: dict[int, dict[str, Any]] = {}
    with _snapshot(rdb) as conn:
        for trial_id, number, state, start, complete in conn.execute(_heads(study_id)):
            by_id[trial_id] = _record(number, state, _stored_utc(start), _stored_utc(complete))
        query = of_study(
            "trial_params", "param_name", "param_value", "distribution_json", order="param_id"
        )
        for trial_id, name, value, dist in conn.execute(query):
            by_id[trial_id]["params"][name] = rows.param(value, dist)
        query = of_study("trial_values", "value", "value_type", order="objective")
        for trial_id, value, kind in conn.execute(query):
            record = by_id[trial_id]
            stored = _optuna.TrialValueModel.stored_repr_to_value(value, kind)
            record["values"] = [*(record["values"] or ()), stored]
        for table, field, order in (
            ("trial_user_attributes", "user_attrs", "trial_user_attribute_id"),
            ("trial_system_attributes", "system_attrs", "trial_system_attribute_id"),
        ):
            query = of_study(table, "key", "value_json", order=order)
            for trial_id, key, text in conn.execute(query):
                by_id[trial_id][field][key] = json.loads(text)
        to_value = _optuna.TrialIntermediateValueModel.stored_repr_to_intermediate_value
        query = of_study(
            "trial_intermediate_values",
            "step",
            "intermediate_value",
            "intermediate_value_type",
            order="trial_intermediate_value_id",
        )
        for trial_id, step, value, kind in conn.execute(query):
            rows.numbers.append(by_id[trial_id]["number"])
            rows.steps.append(step)
            rows.values.append(to_value(value, kind))
    rows.records = list(by_id.values())
    rows.trial_ids = list(by_id)
    return rows


def _utc(moment: datetime.datetime | None) -> str | None:
    # Optuna shows naive local time; the archive keeps the instant, in UTC.
    return None if moment is None else moment.astimezone(_UTC).isoformat(timespec="microseconds")


def _stored_utc(moment: datetime.datetime | None) -> str | None:
    # RDBStorage keeps naive UTC.
    return (
        None if moment is None else moment.replace(tzinfo=_UTC).isoformat(timespec="microseconds")
    )


def _local(text: str | None) -> datetime.datetime | None:
    if text is None:
        return None
    return datetime.datetime.fromisoformat(text).astimezone().replace(tzinfo=None)


def _naive_utc(text: str | None) -> datetime.datetime | None:
    if text is None:
        return None
    return datetime.datetime.fromisoformat(text).astimezone(_UTC).replace(tzinfo=None)


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:  # pragma: no cover - a bare checkout
        return "unknown"


# -- reading -----------------------------------------------------------------------------------
MAX_SIZE = 2**30
"""Bytes an archive may hold uncompressed, all members together. A real one is far smaller
(100,000 trials of 6 parameters and 50 intermediate values: 160 MiB); a crafted one must not
cost the kernel gigabytes of memory before it is refused. To read a larger archive you trust:
``hpo_nb.io.archive.MAX_SIZE = 4 * 2**30``."""

_MEMBERS = (_HEADER, _TRIALS, _IV_TRIAL, _IV_STEP, _IV_VALUE)
_HEADER_MAX = 64 * 2**20  # archive.json: the study's attributes and the distributions
_NPY_HEADER_MAX = 65_536 + 10  # np.save's header, format 1.0, at most
_MAX_RATIO = 1100  # deflate expands at most ~1032 times; more is not a member we wrote
_READ_CHUNK = 2**20


def _mib(size: int) -> str:
    return f"{size / 2**30:.1f} GiB" if size >= 2**30 else f"{size / 2**20:.1f} MiB"


def read_archive(path: str | Path) -> Archive:
    """Read and check the archive at ``path``; every problem is a one-line :class:`HpoError`.

    The members' declared sizes are checked before anything is read (see :data:`MAX_SIZE`),
    and each member is read with a cap, so a small file cannot expand to gigabytes.
    """
    src = Path(path)
    if not src.is_file():
        raise HpoError(f"no archive at {src}")
    not_ours = HpoError(f"{src} is not an hpo_nb archive (those come from %hpo_export --archive)")
    try:
        zf = zipfile.ZipFile(src)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        raise not_ours from None
    with zf:
        if _HEADER not in zf.namelist():
            raise not_ours
        sizes = _declared_sizes(src, zf)
        try:
            header = json.loads(_read(zf, _HEADER, _HEADER_MAX))
        except _DAMAGE:
            raise not_ours from None
        if not isinstance(header, dict) or header.get("format") != FORMAT:
            raise not_ours
        version = header.get("version")
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise HpoError(
                f"{src} is a damaged hpo_nb archive: version {version!r} is not a version number"
            )
        if version > VERSION:
            raise HpoError(
                f"{src} is archive version {version}, newer than this hpo_nb reads "
                f"(version {VERSION}): upgrade hpo_nb"
            )
        try:
            _check_arrays(header, sizes)
            return _parse(header, zf, sizes)
        except _DAMAGE as e:
            detail = (str(e).splitlines() or [""])[0] or type(e).__name__
            raise HpoError(f"{src} is a damaged hpo_nb archive: {detail}") from None


# What a damaged archive raises while it is read (a member too short, of the wrong type, ...).
_DAMAGE = (
    KeyError,
    ValueError,
    TypeError,
    IndexError,
    AttributeError,
    RecursionError,  # JSON nested thousands of levels deep
    OSError,
    EOFError,
    NotImplementedError,  # a compression method zipfile does not know
    zipfile.BadZipFile,
    zlib.error,
)


def _declared_sizes(src: Path, zf: zipfile.ZipFile) -> dict[str, int]:
    """Each member's uncompressed size as the ZIP declares it, checked before anything is read:
    only the five members, each once, expanding no more than deflate can, within MAX_SIZE."""
    sizes: dict[str, int] = {}
    damaged = f"{src} is a damaged hpo_nb archive: "
    for info in zf.infolist():
        name = info.filename
        if name not in _MEMBERS:
            raise HpoError(f"{damaged}unexpected member {name!r} (one of {', '.join(_MEMBERS)})")
        if name in sizes:
            raise HpoError(f"{damaged}member {name!r} is in it twice")
        if info.file_size > 2**20 and info.file_size > _MAX_RATIO * info.compress_size:
            raise HpoError(
                f"{damaged}{name} would expand {info.file_size // max(info.compress_size, 1)} "
                f"times, more than deflate can (a ZIP bomb?)"
            )
        sizes[name] = info.file_size
    if sizes.get(_HEADER, 0) > _HEADER_MAX:
        raise HpoError(
            f"{src} is a damaged hpo_nb archive: {_HEADER} declares "
            f"{_mib(sizes[_HEADER])}, over the {_mib(_HEADER_MAX)} a header may take"
        )
    total = sum(sizes.values())
    if total > MAX_SIZE:
        raise HpoError(
            f"{src} would expand to {total:,} bytes, over the {_mib(MAX_SIZE)} an archive may "
            "hold: if you trust it, raise hpo_nb.io.archive.MAX_SIZE"
        )
    return sizes


def _check_arrays(header: dict[str, Any], sizes: Mapping[str, int]) -> None:
    """The arrays' declared sizes against what the header's count of intermediate values
    takes (8 bytes each, plus the .npy header), before any of them is read."""
    count = header["n_intermediate_values"]
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise ValueError(f"n_intermediate_values {count!r} is not a count")
    for name in (_IV_TRIAL, _IV_STEP, _IV_VALUE):
        if name not in sizes:
            raise ValueError(f"there is no member named {name!r}")
        if not 8 * count <= sizes[name] <= 8 * count + _NPY_HEADER_MAX:
            raise ValueError(
                f"{name} declares {sizes[name]} bytes where {count} intermediate values "
                f"take {8 * count} and a header"
            )


def _read(zf: zipfile.ZipFile, name: str, limit: int) -> bytes:
    """Member ``name``, read through ``zf.open`` and refused past ``limit`` bytes (a header
    that lies about its size gets no further)."""
    with zf.open(name) as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise ValueError(f"{name} holds more than {limit} bytes")
    return data


def _parse(header: dict[str, Any], zf: zipfile.ZipFile, sizes: Mapping[str, int]) -> Archive:
    study = header["study"]
    directions = [StudyDirection[d] for d in study["directions"]]
    distributions = [str(d) for d in header["distributions"]]
    dists = [json_to_distribution(d) for d in distributions]
    if _TRIALS not in sizes:
        raise ValueError(f"there is no member named {_TRIALS!r}")
    text = _read(zf, _TRIALS, sizes[_TRIALS]).decode()
    records = [json.loads(line) for line in text.splitlines()]
    del text
    if len(records) != header["n_trials"]:
        raise ValueError(f"{len(records)} trials where {header['n_trials']} were written")
    numbers = [r["number"] for r in records]
    if any(not isinstance(n, int) for n in numbers) or numbers != sorted(set(numbers)):
        raise ValueError("trial numbers are not increasing")
    for r in records:
        _check_record(r, len(directions), dists)
    count = header["n_intermediate_values"]
    trial = _array(zf, _IV_TRIAL, "<i8", (count,))
    steps = _array(zf, _IV_STEP, "<i8", (count,))
    values = _array(zf, _IV_VALUE, "u1", (8, count)).T.copy().view("<f8").reshape(-1)
    if not set(trial.tolist()) <= set(numbers):
        raise ValueError("an intermediate value belongs to no trial")
    return Archive(
        study_name=str(study["name"]),
        directions=directions,
        user_attrs=_mapping("the study's user_attrs", study["user_attrs"]),
        system_attrs=_mapping("the study's system_attrs", study["system_attrs"]),
        distributions=distributions,
        records=records,
        intermediate=(trial, steps, values),
        meta={k: header.get(k) for k in ("version", "written_by", "written_at")},
    )


def _mapping(what: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise ValueError(f"{what} is not a mapping of names to values")
    return value


def _check_record(
    r: dict[str, Any], n_objectives: int, distributions: Sequence[BaseDistribution]
) -> None:
    """One trial of ``trials.jsonl``, checked as :func:`restore_archive` will write it."""
    number = r["number"]
    TrialState[r["state"]]
    values = r["values"]
    if values is not None:
        if not isinstance(values, list) or len(values) != n_objectives:
            raise ValueError(f"trial {number} does not have {n_objectives} values")
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            raise ValueError(f"trial {number} has a value that is not a number")
    for name, (value, i) in _mapping(f"params of trial {number}", r["params"]).items():
        ok = isinstance(i, int) and 0 <= i < len(distributions)
        ok = ok and isinstance(value, (int, float)) and not isinstance(value, bool)
        if ok and isinstance(distributions[i], CategoricalDistribution):
            ok = _optuna.contains(distributions[i], value)  # the index of a choice
        if not ok:  # (a number out of its range stays: Optuna stores enqueued ones so)
            raise ValueError(f"parameter {name!r} of trial {number} is malformed")
    _mapping(f"user_attrs of trial {number}", r["user_attrs"])
    _mapping(f"system_attrs of trial {number}", r["system_attrs"])
    for key in ("datetime_start", "datetime_complete"):
        _naive_utc(r[key])


def _array(zf: zipfile.ZipFile, name: str, dtype: str, shape: tuple[int, ...]) -> np.ndarray:
    """The .npy member ``name``: its header checked against the ``dtype`` and ``shape`` the
    archive's header implies before its data is read (an object array, which would need
    unpickling, is refused there), then exactly that many bytes."""
    expected = np.dtype(dtype)
    with zf.open(name) as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            found_shape, fortran, found = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            found_shape, fortran, found = np.lib.format.read_array_header_2_0(f)
        else:
            raise ValueError(f"{name} is .npy format {version}, not 1.0 or 2.0")
        if found != expected:
            raise ValueError(f"{name} holds {found}, not {expected}")
        if fortran or tuple(found_shape) != shape:
            raise ValueError(f"{name} has shape {found_shape}, not {shape}")
        size = math.prod(shape) * expected.itemsize
        data = bytearray(size)  # the declared sizes were checked: at most MAX_SIZE
        view, got = memoryview(data), 0
        while got < size:
            chunk = f.read(min(_READ_CHUNK, size - got))
            if not chunk:
                raise ValueError(f"{name} ends after {got} of its {size} bytes")
            view[got : got + len(chunk)] = chunk
            got += len(chunk)
        if f.read(1):
            raise ValueError(f"{name} holds more than its {size} bytes")
    return np.frombuffer(data, dtype=expected).reshape(shape)


# -- restoring ---------------------------------------------------------------------------------
KEPT_SYSTEM_ATTRS = (
    "hpo_nb:",
    "fixed_params",
    "constraints",
    "grid_id",
    "search_space",
    "tpe:relative_params",
    "gp:relative_params",
    "x_for_tell",
)


def _kept(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """The system attributes an import keeps (see the module's docstring)."""
    return {
        k: v
        for k, v in attrs.items()
        if k.startswith(KEPT_SYSTEM_ATTRS) or k.endswith(":generation")
    }


def restore_archive(archive: Archive, rdb: RDBStorage, name: str | None = None) -> int:
    """Create study ``name`` (default: the archived name) in ``rdb`` with every trial of
    ``archive``: the same numbers, states, values, datetimes, parameters, attributes and
    intermediate values. One transaction: on any error nothing is left behind. Returns the
    new study's id."""
    name = name or archive.study_name
    shown = display_url(rdb.url)
    exists = HpoError(
        f"study {name!r} already exists in {shown}: pass --study NEW_NAME to import it "
        "under another name"
    )
    try:
        rdb.get_study_id_from_name(name)
    except KeyError:
        pass
    else:
        raise exists
    try:
        with rdb.engine.begin() as conn:
            try:  # another session may have taken the name since
                created = conn.execute(
                    sqlalchemy.insert(_TABLES["studies"]).values(study_name=name)
                )
            except sqlalchemy.exc.IntegrityError:
                raise exists from None
            study_id = int(created.inserted_primary_key[0])  # type: ignore[index]
            _insert(conn, archive, study_id)
    except sqlalchemy.exc.SQLAlchemyError as e:
        orig = getattr(e, "orig", None) or e
        line = (str(orig).strip().splitlines() or [type(orig).__name__])[0]
        raise HpoError(f"cannot import study {name!r} into {shown}: {line}") from None
    return study_id


def _insert(conn: sqlalchemy.Connection, archive: Archive, study_id: int) -> None:
    def insert(table: str, rows: Sequence[Mapping[str, Any]]) -> None:
        if rows:  # an empty executemany would insert one row of defaults
            conn.execute(sqlalchemy.insert(_TABLES[table]), rows)

    insert(
        "study_directions",
        [
            {"study_id": study_id, "objective": i, "direction": d}
            for i, d in enumerate(archive.directions)
        ],
    )
    insert("study_user_attributes", _attr_rows("study_id", study_id, archive.user_attrs))
    insert("study_system_attributes", _attr_rows("study_id", study_id, _kept(archive.system_attrs)))
    insert(
        "trials",
        [
            {
                "number": r["number"],
                "study_id": study_id,
                "state": TrialState[r["state"]],
                "datetime_start": _naive_utc(r["datetime_start"]),
                "datetime_complete": _naive_utc(r["datetime_complete"]),
            }
            for r in archive.records
        ],
    )
    trials = _TABLES["trials"]
    ids: dict[int, int] = dict(
        conn.execute(
            sqlalchemy.select(trials.c.number, trials.c.trial_id).where(
                trials.c.study_id == study_id
            )
        ).all()
    )
    params, values, user_attrs, system_attrs = [], [], [], []
    to_stored = _optuna.TrialValueModel.value_to_stored_repr
    for r in archive.records:
        trial_id = ids[r["number"]]
        params += [
            {
                "trial_id": trial_id,
                "param_name": p,
                "param_value": v,
                "distribution_json": archive.distributions[i],
            }
            for p, (v, i) in r["params"].items()
        ]
        for objective, value in enumerate(r["values"] or ()):
            stored, kind = to_stored(value)
            values.append(
                {"trial_id": trial_id, "objective": objective, "value": stored, "value_type": kind}
            )
        user_attrs += _attr_rows("trial_id", trial_id, r["user_attrs"])
        system_attrs += _attr_rows("trial_id", trial_id, _kept(r["system_attrs"]))
    insert("trial_params", params)
    insert("trial_values", values)
    insert("trial_user_attributes", user_attrs)
    insert("trial_system_attributes", system_attrs)
    to_stored_step = _optuna.TrialIntermediateValueModel.intermediate_value_to_stored_repr
    finite = _optuna.TrialIntermediateValueModel.TrialIntermediateValueType.FINITE
    curves = []
    for number, step, value in zip(*(a.tolist() for a in archive.intermediate), strict=True):
        point, point_kind = (value, finite) if math.isfinite(value) else to_stored_step(value)
        curves.append(
            {
                "trial_id": ids[number],
                "step": step,
                "intermediate_value": point,
                "intermediate_value_type": point_kind,
            }
        )
    insert("trial_intermediate_values", curves)


def _attr_rows(owner: str, owner_id: int, attrs: Mapping[str, Any]) -> list[dict[str, Any]]:
    # json.dumps as Optuna's storage does it (NaN and Infinity included).
    return [{owner: owner_id, "key": k, "value_json": json.dumps(v)} for k, v in attrs.items()]

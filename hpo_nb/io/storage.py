"""Opening a study's storage: the embedded SQLite default or a server URL, with one-line errors."""

from __future__ import annotations

import contextlib
import os
import sqlite3
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy
from optuna.distributions import BaseDistribution, json_to_distribution
from optuna.storages import RDBStorage

from hpo_nb import _optuna
from hpo_nb._errors import HpoError
from hpo_nb._settings import settings

__all__ = [
    "display_url",
    "load_or_create_study",
    "open_storage",
    "storage_url",
]

_DRIVER_PACKAGES = {
    "psycopg": "psycopg[binary]",
    "psycopg2": "psycopg2-binary",
    "MySQLdb": "mysqlclient",
}


def storage_url(storage: str | None) -> str:
    """The URL for ``storage``: the default when ``None``, ``sqlite:///PATH`` for a bare path."""
    url = settings.storage if storage is None else storage
    if not url.strip():
        raise HpoError("the storage is empty: give a database URL or a SQLite file path")
    if "://" not in url:
        url = f"sqlite:///{url}"
    return url


def display_url(url: str) -> str:
    """``url`` with any password hidden, for messages."""
    try:
        return sqlalchemy.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url


def _sqlite_tuning(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers (other kernels, dashboards) run beside the writer, and with
    # synchronous=NORMAL a commit no longer waits for a disk sync: 4-7x faster writes.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _sqlite_path(url: str) -> str:
    """The file of a SQLite URL (``file:PATH?mode=ro&uri=true`` too)."""
    try:
        parsed = sqlalchemy.engine.make_url(url)
    except Exception:
        return url.split(":///", 1)[-1]
    path = parsed.database or ""
    if parsed.query.get("uri") == "true" and path.startswith("file:"):
        path = path.removeprefix("file:").split("?", 1)[0]
    return path


def open_storage(storage: str | None = None, *, create: bool = True) -> RDBStorage:
    """Open the storage at ``storage``; a SQLite file that is not there is created, unless
    ``create`` is False (commands that only read never leave an empty database behind).
    Errors are one line."""
    url = storage_url(storage)
    shown = display_url(url)
    is_sqlite = url.startswith("sqlite")
    if is_sqlite:
        path = _sqlite_path(url)
        in_memory = not path or path == ":memory:"
        folder = os.path.dirname(os.path.abspath(path)) if not in_memory else ""
        if folder and not os.path.isdir(folder):
            raise HpoError(f"cannot open storage {shown}: folder {folder} does not exist")
        if not create and not in_memory and not os.path.isfile(path):
            raise HpoError(f"no database at {path}: check --storage (nothing was created)")
        foreign = _foreign_tables(path) if not in_memory else []
        if foreign:
            raise HpoError(
                f"cannot open storage {shown}: {path} holds other tables ({', '.join(foreign)}) "
                "and none of Optuna's: check --storage (nothing was written)"
            )
    engine_kwargs: dict[str, Any] = (
        {"connect_args": {"timeout": settings.sqlite_timeout}}
        if is_sqlite
        # A server may have dropped a pooled connection (restarted, or an outage): test each
        # before use. MySQL reads its own snapshot per statement, as PostgreSQL does: a
        # trial's number counts the trials other kernels committed (see engine/writes.py).
        else {"pool_pre_ping": True}
    )
    if url.startswith("mysql"):
        engine_kwargs["isolation_level"] = "READ COMMITTED"
    _optuna.parse_migrations_once()  # 80-200 ms saved per storage opened
    try:
        # No heartbeat_interval here: Optuna would then warn on every ask. The controller
        # records heartbeats itself, and records.recover() turns detection on for its check.
        rdb = RDBStorage(url, engine_kwargs=engine_kwargs)
    except ImportError as e:
        module = getattr(e.__cause__, "name", None) or ""
        package = _DRIVER_PACKAGES.get(module, module) or "the database driver"
        raise HpoError(
            f"cannot open storage {shown}: its driver is missing (pip install {package!r})"
        ) from None
    except Exception as e:
        raise HpoError(f"cannot open storage {shown}: {_first_line(e)}") from None
    if is_sqlite:
        sqlalchemy.event.listen(rdb.engine, "connect", _sqlite_tuning)
        rdb.engine.dispose()  # reconnect so that every pooled connection is tuned
    return rdb


def _foreign_tables(path: str) -> list[str]:
    """The first tables of the SQLite file at ``path`` when it holds tables but not Optuna's:
    another program's database, which Optuna would add its tables to."""
    if not os.path.isfile(path):
        return []
    try:
        with contextlib.closing(
            sqlite3.connect(Path(path).resolve().as_uri() + "?mode=ro", uri=True)
        ) as conn:
            tables = [
                r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
            ]
    except sqlite3.Error:  # not a database: Optuna says so
        return []
    return [] if not tables or "studies" in tables else tables[:3]


def _first_line(error: BaseException) -> str:
    """The database's own words (Optuna's wrapper guesses a cause; its cause says it)."""
    while error.__cause__ is not None:
        error = error.__cause__
    orig = getattr(error, "orig", None)
    text = str(orig if orig is not None else error).strip() or type(error).__name__
    return text.splitlines()[0]


def load_or_create_study(
    rdb: RDBStorage,
    name: str,
    directions: tuple[str, ...],
    sampler: optuna.samplers.BaseSampler,
    pruner: optuna.pruners.BasePruner,
) -> tuple[optuna.Study, bool]:
    """Load study ``name`` (checking its directions) or create it; returns (study, created)."""
    shown = display_url(rdb.url)
    try:
        study = optuna.create_study(
            study_name=name,
            storage=rdb,
            directions=[optuna.study.StudyDirection[d.upper()] for d in directions],
            sampler=sampler,
            pruner=pruner,
        )
        return study, True
    except optuna.exceptions.DuplicatedStudyError:
        pass
    except Exception as e:
        raise HpoError(f"cannot create study {name!r} in {shown}: {_first_line(e)}") from None
    study = optuna.load_study(study_name=name, storage=rdb, sampler=sampler, pruner=pruner)
    stored = tuple(d.name.lower() for d in study.directions)
    if stored != directions:
        raise HpoError(
            f"study {name!r} in {shown} optimizes {' '.join(stored)} but the objective "
            f"declares {' '.join(directions)}: pass --study NEW_NAME to start another study"
        )
    return study, False


_PARAMS_SQL = sqlalchemy.text(
    "SELECT DISTINCT p.param_name, p.distribution_json FROM trial_params p "
    "JOIN trials t ON p.trial_id = t.trial_id WHERE t.study_id = :study_id"
)


def study_distributions(rdb: RDBStorage, name: str) -> dict[str, list[BaseDistribution]]:
    """Each parameter study ``name``'s trials used, with every distribution it had ({} for a
    study that does not exist)."""
    try:
        study_id = rdb.get_study_id_from_name(name)
    except KeyError:
        return {}
    found: dict[str, list[BaseDistribution]] = {}
    with rdb.engine.connect() as conn:
        for param, text in conn.execute(_PARAMS_SQL, {"study_id": study_id}):
            found.setdefault(param, []).append(json_to_distribution(text))
    return found

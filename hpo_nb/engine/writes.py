"""A running study's writes to Optuna's tables, as plain SQL that can share a transaction.

Optuna's ``RDBStorage`` gives each write its own ORM session, look-ups and commit: creating a
trial costs two transactions and five queries, and a trial's life about eight transactions,
which kept the kernel busy for about 10 ms per trial. These functions write the same rows
(``tests/test_storage.py`` reads them back through Optuna) with SQLAlchemy Core on a
connection the caller owns, so the mirror's writer can put everything queued into one
transaction.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from optuna.distributions import BaseDistribution, distribution_to_json
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import TrialState

from hpo_nb import _optuna

__all__ = [
    "create_trial",
    "record_heartbeat",
    "set_param",
    "set_state",
    "set_system_attr",
    "set_user_attr",
    "start_waiting",
]

_TRIALS = _optuna.TrialModel.__table__
_BEATS = _optuna.TrialHeartbeatModel.__table__
_SYSTEM_ATTRS = _optuna.TrialSystemAttributeModel.__table__
_USER_ATTRS = _optuna.TrialUserAttributeModel.__table__

# Statements built once: SQLAlchemy then reuses their compiled form and cache key, which made
# a trial's writes about 4x cheaper than building them per call. Bound names start with "b_"
# (SQLAlchemy rejects a bound name equal to a column's in an UPDATE).
_NEW_TRIAL = sa.insert(_TRIALS)
# Trials are numbered by counting the study's earlier ones; two kernels creating trials at once
# could count the same number (each missing the other's uncommitted row), so creation takes the
# study's row lock first (SQLite, which has one writer at a time, leaves FOR UPDATE out).
_STUDIES = _optuna.BaseModel.metadata.tables["studies"]
_LOCK_STUDY = (
    sa.select(_STUDIES.c.study_id)
    .where(_STUDIES.c.study_id == sa.bindparam("b_study"))
    .with_for_update()
)
_COUNT_BEFORE = sa.select(sa.func.count(_TRIALS.c.trial_id)).where(
    _TRIALS.c.study_id == sa.bindparam("b_study"), _TRIALS.c.trial_id < sa.bindparam("b_id")
)
_SET_NUMBER = (
    sa.update(_TRIALS)
    .where(_TRIALS.c.trial_id == sa.bindparam("b_id"))
    .values(number=sa.bindparam("b_number"))
)
_GET_NUMBER = sa.select(_TRIALS.c.number).where(_TRIALS.c.trial_id == sa.bindparam("b_id"))
_START_WAITING = (
    sa.update(_TRIALS)
    .where(_TRIALS.c.trial_id == sa.bindparam("b_id"), _TRIALS.c.state == TrialState.WAITING)
    .values(state=TrialState.RUNNING, datetime_start=sa.bindparam("b_time"))
)
_FINISH = (
    sa.update(_TRIALS)
    .where(_TRIALS.c.trial_id == sa.bindparam("b_id"), _TRIALS.c.state == TrialState.RUNNING)
    .values(state=sa.bindparam("b_state"), datetime_complete=sa.bindparam("b_time"))
)
_NEW_PARAM = sa.insert(_optuna.TrialParamModel.__table__)
_NEW_VALUES = sa.insert(_optuna.TrialValueModel.__table__)
_NEW_BEAT = sa.insert(_BEATS).values(heartbeat=sa.func.current_timestamp())
_BEAT = (
    sa.update(_BEATS)
    .where(_BEATS.c.trial_id == sa.bindparam("b_id"))
    .values(heartbeat=sa.func.current_timestamp())
)
_ATTR_WRITES = {
    table.name: (
        sa.update(table)
        .where(table.c.trial_id == sa.bindparam("b_id"), table.c.key == sa.bindparam("b_key"))
        .values(value_json=sa.bindparam("b_json")),
        sa.insert(table),
    )
    for table in (_SYSTEM_ATTRS, _USER_ATTRS)
}


def create_trial(conn: sa.Connection, study_id: int, attrs: dict[str, Any]) -> tuple[int, int]:
    """A RUNNING trial with these system attributes and a heartbeat; its id and number."""
    conn.execute(_LOCK_STUDY, {"b_study": study_id})
    row = {
        "study_id": study_id,
        "number": None,
        "state": TrialState.RUNNING,
        "datetime_start": datetime.datetime.now(),
    }
    inserted = conn.execute(_NEW_TRIAL, row).inserted_primary_key
    assert inserted is not None
    trial_id = inserted[0]
    # Optuna's rule: the number of the study's trials created before this one.
    number = conn.execute(_COUNT_BEFORE, {"b_study": study_id, "b_id": trial_id}).scalar_one()
    conn.execute(_SET_NUMBER, {"b_id": trial_id, "b_number": number})
    if attrs:  # a new trial has none yet: inserted, not looked up
        rows = [
            {"trial_id": trial_id, "key": k, "value_json": json.dumps(v)} for k, v in attrs.items()
        ]
        conn.execute(_ATTR_WRITES[_SYSTEM_ATTRS.name][1], rows)
    conn.execute(_NEW_BEAT, {"trial_id": trial_id})
    return int(trial_id), int(number)


def start_waiting(conn: sa.Connection, trial_id: int, attrs: dict[str, Any]) -> int | None:
    """Make an enqueued (WAITING) trial RUNNING with these attributes; its number, or None if
    another process took it first."""
    started = conn.execute(_START_WAITING, {"b_id": trial_id, "b_time": datetime.datetime.now()})
    if started.rowcount != 1:
        return None
    for key, value in attrs.items():
        set_system_attr(conn, trial_id, key, value)
    record_heartbeat(conn, trial_id)
    return int(conn.execute(_GET_NUMBER, {"b_id": trial_id}).scalar_one())


def set_param(
    conn: sa.Connection, trial_id: int, name: str, internal: float, distribution: BaseDistribution
) -> None:
    """A parameter the trial does not have yet (the mirror writes each name once)."""
    row = {
        "trial_id": trial_id,
        "param_name": name,
        "param_value": internal,
        "distribution_json": distribution_to_json(distribution),
    }
    conn.execute(_NEW_PARAM, row)


def set_state(
    conn: sa.Connection, trial_id: int, state: TrialState, values: Sequence[float] | None
) -> None:
    """Finish a RUNNING trial with this state and values."""
    finished = conn.execute(
        _FINISH, {"b_id": trial_id, "b_state": state, "b_time": datetime.datetime.now()}
    )
    if finished.rowcount != 1:
        raise UpdateFinishedTrialError(f"trial {trial_id} was already finished by someone else")
    rows = []
    for objective, value in enumerate(values or ()):
        stored, kind = _optuna.TrialValueModel.value_to_stored_repr(value)
        rows.append(
            {"trial_id": trial_id, "objective": objective, "value": stored, "value_type": kind}
        )
    if rows:
        conn.execute(_NEW_VALUES, rows)


def set_system_attr(conn: sa.Connection, trial_id: int, key: str, value: Any) -> None:
    _set_attr(conn, _SYSTEM_ATTRS, trial_id, key, value)


def set_user_attr(
    conn: sa.Connection, trial_id: int, key: str, value: Any, new: bool = False
) -> None:
    """``new``: the trial is known not to have this attribute yet (no look-up)."""
    _set_attr(conn, _USER_ATTRS, trial_id, key, value, new)


def _set_attr(
    conn: sa.Connection, table: sa.Table, trial_id: int, key: str, value: Any, new: bool = False
) -> None:
    update, insert = _ATTR_WRITES[table.name]
    value_json = json.dumps(value)
    if (
        new
        or conn.execute(update, {"b_id": trial_id, "b_key": key, "b_json": value_json}).rowcount
        == 0
    ):
        conn.execute(insert, {"trial_id": trial_id, "key": key, "value_json": value_json})


def record_heartbeat(conn: sa.Connection, trial_id: int) -> None:
    if conn.execute(_BEAT, {"b_id": trial_id}).rowcount == 0:
        conn.execute(_NEW_BEAT, {"trial_id": trial_id})

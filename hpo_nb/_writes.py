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
from optuna.storages._rdb import models
from optuna.trial import TrialState

__all__ = [
    "create_trial",
    "record_heartbeat",
    "set_param",
    "set_state",
    "set_system_attr",
    "set_user_attr",
    "start_waiting",
]

_TRIALS = models.TrialModel.__table__


def create_trial(conn: sa.Connection, study_id: int, attrs: dict[str, Any]) -> tuple[int, int]:
    """A RUNNING trial with these system attributes and a heartbeat; its id and number."""
    inserted = conn.execute(
        sa.insert(_TRIALS).values(
            study_id=study_id,
            number=None,
            state=TrialState.RUNNING,
            datetime_start=datetime.datetime.now(),
        )
    ).inserted_primary_key
    assert inserted is not None
    trial_id = inserted[0]
    # Optuna's rule: the number of the study's trials created before this one.
    number = conn.execute(
        sa.select(sa.func.count(_TRIALS.c.trial_id)).where(
            _TRIALS.c.study_id == study_id, _TRIALS.c.trial_id < trial_id
        )
    ).scalar_one()
    conn.execute(sa.update(_TRIALS).where(_TRIALS.c.trial_id == trial_id).values(number=number))
    if attrs:  # a new trial has none yet: inserted, not looked up
        rows = [
            {"trial_id": trial_id, "key": k, "value_json": json.dumps(v)} for k, v in attrs.items()
        ]
        conn.execute(sa.insert(models.TrialSystemAttributeModel.__table__), rows)
    beats = models.TrialHeartbeatModel.__table__
    conn.execute(sa.insert(beats).values(trial_id=trial_id, heartbeat=sa.func.current_timestamp()))
    return int(trial_id), int(number)


def start_waiting(conn: sa.Connection, trial_id: int, attrs: dict[str, Any]) -> int | None:
    """Make an enqueued (WAITING) trial RUNNING with these attributes; its number, or None if
    another process took it first."""
    started = conn.execute(
        sa.update(_TRIALS)
        .where(_TRIALS.c.trial_id == trial_id, _TRIALS.c.state == TrialState.WAITING)
        .values(state=TrialState.RUNNING, datetime_start=datetime.datetime.now())
    )
    if started.rowcount != 1:
        return None
    for key, value in attrs.items():
        set_system_attr(conn, trial_id, key, value)
    record_heartbeat(conn, trial_id)
    return int(
        conn.execute(sa.select(_TRIALS.c.number).where(_TRIALS.c.trial_id == trial_id)).scalar_one()
    )


def set_param(
    conn: sa.Connection, trial_id: int, name: str, internal: float, distribution: BaseDistribution
) -> None:
    """A parameter the trial does not have yet (the mirror writes each name once)."""
    conn.execute(
        sa.insert(models.TrialParamModel.__table__).values(
            trial_id=trial_id,
            param_name=name,
            param_value=internal,
            distribution_json=distribution_to_json(distribution),
        )
    )


def set_state(
    conn: sa.Connection, trial_id: int, state: TrialState, values: Sequence[float] | None
) -> None:
    """Finish a RUNNING trial with this state and values."""
    finished = conn.execute(
        sa.update(_TRIALS)
        .where(_TRIALS.c.trial_id == trial_id, _TRIALS.c.state == TrialState.RUNNING)
        .values(state=state, datetime_complete=datetime.datetime.now())
    )
    if finished.rowcount != 1:
        raise UpdateFinishedTrialError(f"trial {trial_id} was already finished by someone else")
    rows = []
    for objective, value in enumerate(values or ()):
        stored, kind = models.TrialValueModel.value_to_stored_repr(value)
        rows.append(
            {"trial_id": trial_id, "objective": objective, "value": stored, "value_type": kind}
        )
    if rows:
        conn.execute(sa.insert(models.TrialValueModel.__table__), rows)


def set_system_attr(conn: sa.Connection, trial_id: int, key: str, value: Any) -> None:
    _set_attr(conn, models.TrialSystemAttributeModel.__table__, trial_id, key, value)


def set_user_attr(conn: sa.Connection, trial_id: int, key: str, value: Any) -> None:
    _set_attr(conn, models.TrialUserAttributeModel.__table__, trial_id, key, value)


def _set_attr(conn: sa.Connection, table: sa.Table, trial_id: int, key: str, value: Any) -> None:
    value_json = json.dumps(value)
    updated = conn.execute(
        sa.update(table)
        .where(table.c.trial_id == trial_id, table.c.key == key)
        .values(value_json=value_json)
    )
    if updated.rowcount == 0:
        conn.execute(sa.insert(table).values(trial_id=trial_id, key=key, value_json=value_json))


def record_heartbeat(conn: sa.Connection, trial_id: int) -> None:
    table = models.TrialHeartbeatModel.__table__
    now = sa.func.current_timestamp()
    updated = conn.execute(
        sa.update(table).where(table.c.trial_id == trial_id).values(heartbeat=now)
    )
    if updated.rowcount == 0:
        conn.execute(sa.insert(table).values(trial_id=trial_id, heartbeat=now))

"""A study's hpo_nb record, kept in the storage beside Optuna's own data.

Study system attributes (JSON) that make a study's state truthful from any kernel:

- ``hpo_nb:record``: the run state and its reason, the owner session (host, pid, id) and its
  last heartbeat, the counts by state and the best value (refreshed every few seconds);
- ``hpo_nb:config``: what the last run was started with (objective, sampler, pruner, target,
  space, ...), so ``%hpo_resume`` starts the same run again;
- ``hpo_nb:stop``: a stop asked for by ``%hpo_stop`` from another kernel.

Each trial carries ``hpo_nb:trial`` (the session that ran it and the objective's version).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import os
import socket
import time
import uuid
from typing import Any

import optuna
import psutil
from optuna.storages import RDBStorage
from optuna.trial import FrozenTrial, TrialState

from hpo_nb import _optuna

__all__ = [
    "CONFIG_KEY",
    "FAIL_REASON_KEY",
    "GIVEN_KEY",
    "RECORD_KEY",
    "STOP_KEY",
    "TRACEBACK_KEY",
    "TRIAL_KEY",
    "Owner",
    "effective_state",
    "recover",
    "retry_params",
    "session",
]

FAIL_REASON_KEY = "hpo_nb:fail_reason"
TRACEBACK_KEY = "hpo_nb:traceback"
RECORD_KEY = "hpo_nb:record"
CONFIG_KEY = "hpo_nb:config"
STOP_KEY = "hpo_nb:stop"
TRIAL_KEY = "hpo_nb:trial"
GIVEN_KEY = "hpo_nb:given"  # the values a trial was given as it started (see retry_params)


@dataclasses.dataclass(frozen=True)
class Owner:
    """The Python process (kernel) that runs a study."""

    host: str
    pid: int
    session: str
    started: float = 0.0  # the process's creation time: a reused pid is another process

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: Any) -> Owner | None:
        try:
            return cls(
                host=str(data["host"]),
                pid=int(data["pid"]),
                session=str(data["session"]),
                started=float(data.get("started", 0.0)),
            )
        except (TypeError, KeyError, ValueError, AttributeError):
            return None

    def alive(self) -> bool | None:
        """Whether the process still runs; ``None`` when it is on another host."""
        if self.host != socket.gethostname():
            return None
        try:
            process = psutil.Process(self.pid)
            if process.status() == psutil.STATUS_ZOMBIE:
                return False
            return abs(process.create_time() - self.started) < 1.0 or not self.started
        except psutil.NoSuchProcess:
            return False
        except psutil.Error:
            return None


_SESSION = Owner(
    host=socket.gethostname(),
    pid=os.getpid(),
    session=uuid.uuid4().hex[:12],
    started=psutil.Process().create_time(),
)


def session() -> Owner:
    """This process."""
    return _SESSION


def now_iso() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def effective_state(record: dict[str, Any], grace: float) -> tuple[str, str]:
    """The state to show: a "running" study whose owner is gone is "interrupted"."""
    state, reason = record.get("state", "unknown"), record.get("reason", "")
    if state not in ("running", "stopping", "starting"):
        return state, reason
    owner = Owner.from_json(record.get("owner"))
    alive = owner.alive() if owner is not None else None
    beat = float(record.get("heartbeat", 0.0))
    if alive is False or (alive is None and time.time() - beat > grace):
        who = f"pid {owner.pid} on {owner.host}" if owner else "its kernel"
        return "interrupted", f"{who} stopped without ending the run"
    return state, reason


def recover(study: optuna.Study, rdb: RDBStorage, grace: float) -> list[FrozenTrial]:
    """Mark FAIL the trials left RUNNING by sessions that are gone; return them.

    A session is gone when its process is known to have exited (same host), or when its
    heartbeat is older than ``grace`` seconds (Optuna's stale-trial rule, for other hosts).
    """
    study_id = rdb.get_study_id_from_name(study.study_name)
    record = rdb.get_study_system_attrs(study_id).get(RECORD_KEY) or {}
    owner = Owner.from_json(record.get("owner"))
    state, _ = effective_state(record, grace)
    dead = {owner.session} if owner is not None and state == "interrupted" else set()
    running = rdb.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,))
    for t in running:
        if owner is not None and (t.system_attrs.get(TRIAL_KEY) or {}).get("session") in dead:
            _fail(rdb, _optuna.trial_id(t), f"its kernel (pid {owner.pid} on {owner.host}) died")
    rdb.heartbeat_interval, rdb.grace_period = max(1, int(grace) // 2), max(1, int(grace))
    try:  # Optuna's own rule: heartbeat older than the grace period (what fail_stale_trials does)
        stale = _optuna.stale_trial_ids(rdb, study_id)
    finally:
        rdb.heartbeat_interval = None
    for trial_id in stale:
        _fail(rdb, trial_id, f"no heartbeat for {grace:g} s: its kernel died")
    still = {
        _optuna.trial_id(t)
        for t in rdb.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,))
    }
    gone = [t for t in running if _optuna.trial_id(t) not in still]
    return gone


def retry_params(t: FrozenTrial) -> dict[str, Any]:
    """The parameters to run an orphan again with: those the storage has, and the values it
    was given as it started for the rest (its kernel may have died before its worker told
    the kernel which it used)."""
    return {**(t.system_attrs.get(GIVEN_KEY) or {}), **t.params}


def _fail(rdb: RDBStorage, trial_id: int, reason: str) -> None:
    with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):  # it just finished
        rdb.set_trial_system_attr(trial_id, FAIL_REASON_KEY, reason)
        rdb.set_trial_state_values(trial_id, TrialState.FAIL)

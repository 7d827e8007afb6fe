"""Storage behaviour on every backend: SQLite file, PostgreSQL and MariaDB servers."""

from __future__ import annotations

import dataclasses
import sqlite3
import time

import optuna
import pytest
import sqlalchemy
from optuna.trial import TrialState

import hpo_nb
import hpo_nb.engine.run as run_module
from hpo_nb import HpoError, RunState
from hpo_nb.engine.controller import FAIL_REASON_KEY
from hpo_nb.io.storage import open_storage

pytestmark = pytest.mark.database


def everything(trial):
    x = trial.suggest_float("x", 0, 1)
    n = trial.suggest_int("n", 1, 64, log=True)
    kind = trial.suggest_categorical("kind", ["a", "b", None])
    if kind == "a":
        trial.suggest_float("only_a", 0.1, 0.9, step=0.1)
    for step in range(3):
        trial.report(x + step, step)
    trial.set_user_attr("n_squared", n * n)
    if kind is None:
        raise RuntimeError("kind is None")
    return x * n


def endless(trial):
    trial.suggest_float("x", 0, 1)
    for step in range(2400):
        time.sleep(0.05)
        trial.report(0.0, step)
    return 0.0


def test_everything_a_trial_records_is_stored(any_db):
    run = hpo_nb.run(everything, n_trials=15, storage=any_db, sampler="random", seed=2, wait=True)
    assert run.state == RunState.COMPLETED
    trials = optuna.load_study(study_name="everything", storage=any_db).trials
    assert len(trials) == 15 and [t.number for t in trials] == list(range(15))
    for t in trials:
        x, n, kind = t.params["x"], t.params["n"], t.params["kind"]
        assert ("only_a" in t.params) == (kind == "a")
        assert t.intermediate_values == {s: pytest.approx(x + s) for s in range(3)}
        assert t.user_attrs == {"n_squared": n * n}
        if kind is None:
            assert t.state == TrialState.FAIL
            assert t.system_attrs[FAIL_REASON_KEY] == "RuntimeError: kind is None"
        else:
            assert t.state == TrialState.COMPLETE and t.value == pytest.approx(x * n)
        assert t.datetime_start is not None and t.datetime_complete is not None


def test_enqueued_trials_run_first_with_their_values(any_db):
    study = optuna.create_study(study_name="everything", storage=any_db)
    study.enqueue_trial({"x": 0.25, "n": 4, "kind": "b"})
    study.enqueue_trial({"x": 0.5, "n": 2, "kind": "a", "only_a": 0.3})
    hpo_nb.run(everything, n_trials=4, storage=any_db, wait=True)
    trials = optuna.load_study(study_name="everything", storage=any_db).trials
    assert len(trials) == 4
    assert trials[0].params == {"x": 0.25, "n": 4, "kind": "b"} and trials[0].value == 1.0
    assert trials[1].params == {"x": 0.5, "n": 2, "kind": "a", "only_a": pytest.approx(0.3)}


def test_resume_reaches_the_total_and_keeps_the_history(any_db):
    first = hpo_nb.run(everything, n_trials=3, storage=any_db, sampler="random", wait=True)
    second = hpo_nb.run(everything, n_trials=6, storage=any_db, sampler="random", wait=True)
    assert first.progress.finished == 3 and second.progress.finished_before == 3
    trials = optuna.load_study(study_name="everything", storage=any_db).trials
    assert [t.number for t in trials] == list(range(6))


def test_a_stopped_run_leaves_no_running_trial(any_db):
    run = hpo_nb.run(endless, n_trials=6, storage=any_db)
    deadline = time.monotonic() + 60
    while run.progress.running < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    run.stop().wait(60)
    trials = optuna.load_study(study_name="endless", storage=any_db).trials
    assert len(trials) == 2
    assert {t.state for t in trials} == {TrialState.FAIL}
    assert {t.system_attrs[FAIL_REASON_KEY] for t in trials} == {"cancelled: stopped by user"}


def test_trials_of_a_dead_session_are_failed_by_the_next_run(any_db, monkeypatch):
    quick = dataclasses.replace(run_module.settings, stale_grace=1)
    monkeypatch.setattr(run_module, "settings", quick)
    study = optuna.create_study(study_name="everything", storage=any_db)
    rdb = open_storage(any_db)
    zombie = rdb.create_new_trial(rdb.get_study_id_from_name("everything"))
    rdb.record_heartbeat(zombie)  # the dead kernel's last heartbeat
    time.sleep(2.5)
    run = hpo_nb.run(everything, n_trials=3, storage=any_db, wait=True)
    trials = study.trials
    assert trials[0].state == TrialState.FAIL
    assert trials[0].system_attrs[FAIL_REASON_KEY] == "no heartbeat for 1 s: its kernel died"
    assert run.progress.finished_before == 1 and len(trials) == 3


def test_new_storages_are_stamped_with_the_schema_version_parsing_migrations_once(
    tmp_path, monkeypatch
):
    from alembic.script import ScriptDirectory

    parses = []
    original = ScriptDirectory.from_config.__func__  # type: ignore[attr-defined]
    monkeypatch.setattr(
        ScriptDirectory,
        "from_config",
        classmethod(lambda cls, config: parses.append(1) or original(cls, config)),
    )
    open_storage(f"sqlite:///{tmp_path / 'first.db'}")  # may parse them (once per process)
    parses.clear()
    storages = [open_storage(f"sqlite:///{tmp_path / f'db{i}.db'}") for i in range(3)]
    assert parses == []
    for storage in storages:  # Optuna's own check: the stamped version is the head
        storage._version_manager.check_table_schema_compatibility()
        assert storage.get_current_version() == storage.get_head_version()


def test_sqlite_runs_in_wal_mode(tmp_path):
    path = tmp_path / "x.db"
    hpo_nb.run(everything, n_trials=2, storage=str(path), wait=True)  # a bare path works
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("postgresql+psycopg://127.0.0.1:5432/no_such_db", 'database "no_such_db" does not exist'),
        ("postgresql+psycopg://127.0.0.1:1/test", "cannot open storage"),
        ("mysql+pymysql://nobody:wrong@127.0.0.1:3306/test", "Access denied"),
        (
            "mysql+mysqldb://root@127.0.0.1/test",
            "its driver is missing (pip install 'mysqlclient')",
        ),
        ("postgresql://user:secret@127.0.0.1:1/test", "postgresql://user:***@127.0.0.1:1/test"),
        ("nosuch://x", "cannot open storage nosuch://x"),
    ],
)
def test_storage_errors_are_one_line(url, message):
    with pytest.raises(HpoError) as info:
        open_storage(url)
    text = str(info.value)
    assert message in text and "\n" not in text and "secret" not in text


def test_the_mirrors_plain_sql_writes_read_back_as_optunas_own(any_db):
    """hpo_nb writes a running study's rows with SQLAlchemy Core (hpo_nb/engine/writes.py); Optuna
    must read them exactly as if its own RDBStorage had written them."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    from hpo_nb.engine import writes as writes
    from hpo_nb.io.storage import open_storage

    rdb = open_storage(any_db)
    study = optuna.create_study(study_name="sql", storage=rdb, directions=["minimize"] * 2)
    study.enqueue_trial({"x": 0.5})
    waiting = study.trials[0]._trial_id
    dists = {"x": FloatDistribution(0, 1), "c": CategoricalDistribution(["a", None, 3])}
    with rdb.engine.begin() as conn:
        started = writes.start_waiting(conn, waiting, {"hpo_nb:trial": {"session": "s"}})
        new_id, number = writes.create_trial(conn, study._study_id, {"k": [1, "two"]})
        for trial_id in (waiting, new_id):
            writes.set_param(conn, trial_id, "x", 0.25, dists["x"])
            writes.set_param(conn, trial_id, "c", 1, dists["c"])
            writes.set_user_attr(conn, trial_id, "u", {"a": 1})
            writes.set_user_attr(conn, trial_id, "u", {"a": 2})  # replaced, not added
            writes.set_system_attr(conn, trial_id, "k", "v")
            writes.record_heartbeat(conn, trial_id)
        writes.set_state(conn, waiting, TrialState.COMPLETE, [1.5, float("inf")])
        assert writes.start_waiting(conn, waiting, {}) is None  # no longer waiting
    assert (started, number) == (0, 1)
    first, second = optuna.load_study(study_name="sql", storage=any_db).trials
    assert first.state == TrialState.COMPLETE and first.values == [1.5, float("inf")]
    assert first.datetime_complete is not None and first.datetime_start is not None
    assert first.params == second.params == {"x": 0.25, "c": None}
    assert first.distributions == second.distributions == dists
    assert first.user_attrs == second.user_attrs == {"u": {"a": 2}}
    assert first.system_attrs["hpo_nb:trial"] == {"session": "s"}
    assert second.system_attrs == {"k": "v"} and second.state == TrialState.RUNNING
    assert second.number == 1 and second._trial_id == new_id
    beats = optuna.storages._rdb.models.TrialHeartbeatModel.__table__
    with rdb.engine.connect() as conn:  # one heartbeat row each, updated in place
        rows = conn.execute(sqlalchemy.select(beats.c.trial_id, beats.c.heartbeat)).all()
    assert sorted(r[0] for r in rows) == sorted([waiting, new_id]) and all(r[1] for r in rows)
    with pytest.raises(optuna.exceptions.UpdateFinishedTrialError), rdb.engine.begin() as conn:
        writes.set_state(conn, waiting, TrialState.FAIL, None)

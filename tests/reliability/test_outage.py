"""A storage that stops answering mid-study loses nothing (issue 24, item 4).

The outages are real: PostgreSQL and MariaDB are reached through a TCP proxy the test takes
down (the system's servers keep running), and SQLite fills up (``max_page_count``, SQLite's
own "database or disk is full").
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import sqlite3
import time
import uuid
from collections.abc import Iterator

import optuna
import pytest
import sqlalchemy
from optuna.trial import TrialState
from tcp_proxy import TcpProxy

import hpo_nb
from hpo_nb import HpoError, RunState
from hpo_nb.engine import run as run_module
from hpo_nb.engine.records import RECORD_KEY

SERVERS = {
    "postgresql": (("127.0.0.1", 5432), "postgresql+psycopg://127.0.0.1:{port}/test"),
    "mysql": (("127.0.0.1", 3306), "mysql+pymysql://root@127.0.0.1:{port}/test"),
}
N_TRIALS = 24


def slow_square(trial):
    import time

    x = trial.suggest_float("x", -1.0, 1.0)
    time.sleep(0.15)
    return x * x


@pytest.fixture(params=list(SERVERS), ids=list(SERVERS))
def server(request) -> Iterator[tuple[TcpProxy, str, str]]:
    """A proxy to a real database server; its URL through the proxy; the direct URL."""
    target, template = SERVERS[request.param]
    proxy = TcpProxy(target)
    direct = template.format(port=target[1])
    yield proxy, proxy.url(template), direct
    proxy.close()
    for name in optuna.get_all_study_names(direct):
        if name.startswith("outage-"):
            optuna.delete_study(study_name=name, storage=direct)


def _patience(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    quick = dataclasses.replace(run_module.settings, storage_patience=seconds)
    monkeypatch.setattr(run_module, "settings", quick)


def _wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.1)


def _states(url: str, name: str) -> collections.Counter[str]:
    study = optuna.load_study(study_name=name, storage=url)
    return collections.Counter(t.state.name for t in study.get_trials(deepcopy=False))


def _record(url: str, name: str) -> dict:
    storage = optuna.storages.RDBStorage(url)
    try:
        study_id = storage.get_study_id_from_name(name)
        return storage.get_study_system_attrs(study_id).get(RECORD_KEY) or {}
    finally:
        storage.engine.dispose()


def _one_line(text: str) -> bool:
    return bool(text) and "\n" not in text and "Traceback" not in text


def _cut_off_after_three_trials(
    proxy: TcpProxy, url: str, monkeypatch: pytest.MonkeyPatch, patience: float
) -> tuple[hpo_nb.Run, str]:
    """A run through ``proxy`` whose server is cut off after its third complete trial."""
    _patience(monkeypatch, patience)
    name = f"outage-{uuid.uuid4().hex[:8]}"
    run = hpo_nb.run(slow_square, n_trials=N_TRIALS, storage=url, study=name, workers=2)
    _wait_for(lambda: run.progress.complete >= 3, 60, "three trials")
    proxy.down()
    return run, name


def test_a_short_outage_is_waited_out_and_loses_nothing(server, monkeypatch):
    proxy, url, direct = server
    run, name = _cut_off_after_three_trials(proxy, url, monkeypatch, patience=60.0)
    time.sleep(6.0)  # trials go on meanwhile; their results wait in memory
    proxy.up()
    run.wait(timeout=120)
    assert run.state == RunState.COMPLETED, run.reason
    events = "\n".join(run.progress.events)
    assert "storage unreachable, retrying (1/" in events
    assert "storage reachable again" in events
    states = _states(direct, name)
    assert states == {"COMPLETE": N_TRIALS}, states
    numbers = [t.number for t in optuna.load_study(study_name=name, storage=direct).trials]
    assert sorted(numbers) == list(range(N_TRIALS))


def test_a_long_outage_fails_the_run_in_one_line_and_the_study_recovers(server, monkeypatch):
    proxy, url, direct = server
    run, name = _cut_off_after_three_trials(proxy, url, monkeypatch, patience=2.0)
    _wait_for(lambda: run.done, 60, "the run to give up")
    assert run.state == RunState.FAILED
    assert "the storage did not answer" in run.reason and _one_line(run.reason), run.reason
    # The kernel tells the truth while the storage cannot.
    assert hpo_nb.status(name, storage=url).state == "failed"
    complete_in_memory = run.progress.complete
    proxy.up()

    def settled() -> bool:  # the writes kept in memory reach the storage once it is back
        return _record(direct, name).get("state") == "failed" and not _states(direct, name).get(
            "RUNNING"
        )

    _wait_for(settled, 60, "the kept writes")
    assert _states(direct, name)["COMPLETE"] == complete_in_memory
    assert "the storage did not answer" in _record(direct, name)["reason"]
    resumed = hpo_nb.resume(name, {"slow_square": slow_square}, storage=url)
    resumed.wait(timeout=120)
    assert resumed.state == RunState.COMPLETED, resumed.reason
    states = _states(direct, name)
    assert states.get("RUNNING", 0) == 0
    assert states["COMPLETE"] >= N_TRIALS


@pytest.fixture
def page_budget(monkeypatch) -> Iterator[dict[str, int | None]]:
    """SQLite connections limited to ``budget["pages"]`` pages (None: no limit): SQLite's own
    "database or disk is full" when a write needs more."""
    budget: dict[str, int | None] = {"pages": None}

    def limit(dbapi_connection, _record, _proxy) -> None:
        if isinstance(dbapi_connection, sqlite3.Connection):
            pages = budget["pages"] or 1_073_741_823
            dbapi_connection.execute(f"PRAGMA max_page_count = {pages}")

    sqlalchemy.event.listen(sqlalchemy.pool.Pool, "checkout", limit)
    yield budget
    sqlalchemy.event.remove(sqlalchemy.pool.Pool, "checkout", limit)


def test_a_full_sqlite_file_fails_the_run_in_one_line_and_stays_intact(
    tmp_path, monkeypatch, page_budget
):
    _patience(monkeypatch, 2.0)
    path = tmp_path / "hpo.db"
    url = f"sqlite:///{path}"
    run = hpo_nb.run(slow_square, n_trials=200, storage=url, study="full", workers=2)
    _wait_for(lambda: run.progress.complete >= 3, 60, "three trials")
    with sqlite3.connect(path) as conn:
        page_budget["pages"] = conn.execute("PRAGMA page_count").fetchone()[0] + 1
    _wait_for(lambda: run.done, 120, "the run to give up")
    assert run.state == RunState.FAILED
    assert "database or disk is full" in run.reason and _one_line(run.reason), run.reason
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    page_budget["pages"] = None  # space freed: the kept writes go in
    _wait_for(lambda: _record(url, "full").get("state") == "failed", 60, "the kept writes")
    assert not _states(url, "full").get("RUNNING")
    resumed = hpo_nb.resume("full", {"slow_square": slow_square}, storage=url, n_trials=8)
    resumed.wait(timeout=120)
    assert resumed.state == RunState.COMPLETED, resumed.reason
    assert not _states(url, "full").get("RUNNING")


def test_a_read_only_sqlite_file_is_one_line_and_unchanged(tmp_path):
    path = tmp_path / "hpo.db"
    first = hpo_nb.run(
        slow_square, n_trials=2, storage=f"sqlite:///{path}", study="ro", workers=1, wait=True
    )
    assert first.state == RunState.COMPLETED
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    read_only = f"sqlite:///file:{path}?mode=ro&uri=true"
    with pytest.raises(HpoError) as caught:
        hpo_nb.run(slow_square, n_trials=2, storage=read_only, study="ro", workers=1, wait=True)
    message = str(caught.value)
    assert _one_line(message) and "readonly" in message.replace("read-only", "readonly"), message
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before
    assert _states(f"sqlite:///{path}", "ro") == {TrialState.COMPLETE.name: 2}

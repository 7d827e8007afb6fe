"""A study's life from any kernel: list, status, stop, resume, best, export, delete."""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import time

import optuna
import psutil
import pyarrow.parquet
import pytest
from _kernel import Kernel
from optuna.trial import TrialState

import hpo_nb
from hpo_nb import HpoError
from hpo_nb.engine.records import FAIL_REASON_KEY, RECORD_KEY, TRIAL_KEY, retry_params


def quad(trial):
    x = trial.suggest_float("x", -5, 5)
    trial.set_user_attr("tag", {"x": round(x, 2)})
    return (x - 1) ** 2


def pair(trial):
    x = trial.suggest_float("x", 0, 1)
    return x, 1 - x


def record(db, name):
    rdb = optuna.storages.RDBStorage(db)
    return rdb.get_study_system_attrs(rdb.get_study_id_from_name(name))[RECORD_KEY]


def test_list_status_best_export_and_delete(db, tmp_path):
    hpo_nb.run(quad, n_trials=8, storage=db, sampler="random", seed=0, wait=True)
    hpo_nb.run(pair, n_trials=6, storage=db, directions=["minimize", "minimize"], wait=True)
    listing = hpo_nb.studies(db)
    assert [s.name for s in listing] == ["quad", "pair"]
    info = listing[0]
    trials = optuna.load_study(study_name="quad", storage=db).trials
    best = min(trials, key=lambda t: t.value)
    assert (info.state, info.finished, info.complete, info.running) == ("completed", 8, 8, 0)
    assert info.best_value == best.value and info.best_number == best.number
    assert "quad" in repr(listing) and "<table>" in listing._repr_html_()
    assert hpo_nb.status("quad", db) == info
    assert record(db, "quad")["state"] == "completed"

    assert hpo_nb.best("quad", db) == best.params
    front = hpo_nb.best("pair", db)
    assert isinstance(front, list) and all(set(p) == {"number", "values", "params"} for p in front)

    path = hpo_nb.export("quad", tmp_path / "best.json", "json", db)
    assert json.loads(path.read_text()) == best.params
    path = hpo_nb.export("quad", tmp_path / "trials.csv", "csv", db)
    rows = list(csv.DictReader(path.open()))
    assert len(rows) == 8 and {"number", "state", "value", "params_x", "user_attrs_tag"} <= set(
        rows[0]
    )
    assert float(rows[best.number]["value"]) == pytest.approx(best.value)
    path = hpo_nb.export("pair", tmp_path / "trials.parquet", "parquet", db)
    table = pyarrow.parquet.read_table(path).to_pylist()
    assert len(table) == 6 and {"value_0", "value_1", "params_x"} <= set(table[0])

    hpo_nb.delete("quad", db)
    assert [s.name for s in hpo_nb.studies(db)] == ["pair"]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda db: hpo_nb.status("nope", db), "no study 'nope' in sqlite:///"),
        (lambda db: hpo_nb.best("nope", db), "no study 'nope'"),
        (lambda db: hpo_nb.export("quad", "/no/such/dir/x.json", "json", db), "does not exist"),
        (lambda db: hpo_nb.export("quad", "x.xml", "xml", db), "unknown export format 'xml'"),
        (lambda db: hpo_nb.stop("quad", db), "is not running (state: completed)"),
        (lambda db: hpo_nb.resume("quad", {}, storage=db), "runs objective 'quad': define it"),
    ],
)
def test_lifecycle_errors_are_one_line(call, message, db):
    hpo_nb.run(quad, n_trials=2, storage=db, wait=True)
    with pytest.raises(HpoError, match=re.escape(message)) as info:
        call(db)
    assert "\n" not in str(info.value)


def test_resume_reuses_the_recorded_configuration(db):
    hpo_nb.run(quad, n_trials=3, storage=db, sampler="random", seed=5, pruner="none", wait=True)
    run = hpo_nb.resume("quad", {"quad": quad}, storage=db, n_trials=5)
    run.wait(60)
    assert run.progress.finished == 5 and run.progress.finished_before == 3
    assert type(run._controller._mirror.study.sampler).__name__ == "RandomSampler"


SLOW = """%%hpo_objective slow
import time
x = trial.suggest_float("x", 0, 1)
for step in range(600):
    time.sleep(0.05)
    trial.report(x, step)
x
"""


def running(db, name):
    study = optuna.load_study(study_name=name, storage=db)
    return sum(t.state == TrialState.RUNNING for t in study.trials)


def wait_for(predicate, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


@pytest.mark.kernel
def test_a_second_kernel_lists_and_stops_a_study(tmp_path):
    db = f"sqlite:///{tmp_path / 'hpo.db'}"
    first, second = Kernel(str(tmp_path)), Kernel(str(tmp_path))
    try:
        first.ok("%load_ext hpo_nb")
        first.ok(SLOW)
        first.ok("%hpo_run slow --n-trials 8 -o r")
        wait_for(lambda: os.path.exists(tmp_path / "hpo.db") and running(db, "slow") == 2)
        second.ok("%load_ext hpo_nb")
        listing = second.ok("%hpo_list").text
        assert "slow" in listing and "running" in listing
        assert "running" in second.ok("%hpo_status slow").text
        reply = second.execute("%hpo_delete slow --yes")
        assert "is running in another kernel" in reply.stderr
        assert (
            "asked the kernel running 'slow' to stop now"
            in second.ok("%hpo_stop slow --now").stdout
        )
        wait_for(lambda: first.ok("print(r.state.value)").stdout.strip() == "stopped", 30)
        reason = first.ok("print(r.reason)").stdout.strip()
        assert reason.startswith("stopped by %hpo_stop from pid ")
        assert running(db, "slow") == 0
        assert "stopped" in second.ok("%hpo_list").text
        second.ok("%hpo_delete slow --yes")
        assert "no studies" in second.ok("%hpo_list").text
    finally:
        first.shutdown()
        second.shutdown()


@pytest.mark.kernel
def test_resume_after_the_kernel_was_killed_accounts_exactly(tmp_path):
    db = f"sqlite:///{tmp_path / 'hpo.db'}"
    first = Kernel(str(tmp_path))
    first.ok("%load_ext hpo_nb")
    # A second per trial, 16 trials on two workers: still running when the kill comes.
    first.ok(SLOW.replace("range(600)", "range(20)"))
    pid = int(first.ok("import os; print(os.getpid())").stdout)
    first.ok("%hpo_run slow --n-trials 16")
    wait_for(lambda: os.path.exists(tmp_path / "hpo.db") and running(db, "slow") >= 1)
    wait_for(
        lambda: (
            sum(
                t.state.is_finished()
                for t in optuna.load_study(study_name="slow", storage=db).trials
            )
            >= 3
        ),
        60,
    )
    # Its local cluster: the scheduler and the workers (and multiprocessing's helpers).
    cluster = psutil.Process(pid).children(recursive=True)
    assert len(cluster) >= 3, cluster
    os.kill(pid, signal.SIGKILL)
    _, alive = psutil.wait_procs(cluster, timeout=30)  # they exit by themselves
    assert not alive, f"the dead kernel's processes live on: {alive}"
    first.client.stop_channels()
    before = optuna.load_study(study_name="slow", storage=db).trials
    orphans = [t for t in before if t.state == TrialState.RUNNING]
    finished_before = [t for t in before if t.state.is_finished()]
    assert orphans, "the kernel died while trials ran"

    second = Kernel(str(tmp_path))
    try:
        second.ok("%load_ext hpo_nb")
        assert "interrupted" in second.ok("%hpo_list").text
        second.ok(SLOW.replace("range(600)", "range(20)"))
        second.ok("%hpo_resume slow --retry-failed --wait -o r")
        trials = optuna.load_study(study_name="slow", storage=db).trials
        by_number = {t.number: t for t in trials}
        for t in orphans:  # failed with the reason, not left RUNNING
            assert by_number[t.number].state == TrialState.FAIL
            assert "its kernel (pid" in by_number[t.number].system_attrs[FAIL_REASON_KEY]
        for t in finished_before:  # kept exactly as they were
            assert by_number[t.number].state == t.state and by_number[t.number].value == t.value
        assert not any(t.state == TrialState.RUNNING for t in trials)
        assert sum(t.state.is_finished() for t in trials) == 16
        last_orphan = max(o.number for o in orphans)
        retried = [
            t
            for t in trials
            if t.number > last_orphan
            and t.state == TrialState.COMPLETE
            and t.params in [retry_params(o) for o in orphans]
        ]
        # With their parameters: stored, or given as they started if their workers had not
        # reported them yet when the kernel died.
        assert len(retried) == len(orphans), "the orphans ran again with their parameters"
        sessions = {(t.system_attrs.get(TRIAL_KEY) or {}).get("session") for t in trials}
        assert len(sessions) == 2
    finally:
        second.shutdown()
        first.manager.cleanup_resources()


@pytest.mark.kernel
@pytest.mark.parametrize(
    ("cell", "message"),
    [
        ("%hpo_list --storage nosuch://x", "cannot open storage nosuch://x"),
        ("%hpo_status nope", "no study 'nope' in sqlite:///hpo.db (studies there: other)"),
        ("%hpo_list --storage typo.db", "no database at typo.db: check --storage"),
        ("%hpo_status nope --storage typo.db", "no database at typo.db"),
        ("%hpo_stop", "no study is running in this kernel"),
        ("%hpo_stop nope", "no study 'nope'"),
        ("%hpo_resume nope", "no study 'nope'"),
        ("%hpo_resume nope --n-trials zero", "n_trials must be an integer >= 1, got 'zero'"),
        ("%hpo_best nope", "no study 'nope'"),
        ("%hpo_best", "the following arguments are required: study"),
        ("%hpo_export nope --format xml --out x", "argument --format: invalid choice: 'xml'"),
        ("%hpo_export nope --format json", "the following arguments are required: --out"),
        ("%hpo_delete nope", "deleting 'nope' removes all its trials: add --yes"),
        ("%hpo_delete nope --yes", "no study 'nope'"),
        ("%hpo_run f --n-trials 3 --sampler-opt bogus=1", "unknown option 'bogus' for sampler"),
        ("%hpo_run f --n-trials 3 --sampler-opt novalue", "is not key=value"),
        ("%hpo_run f --n-trials 3 --pruner-opt nope=1", "unknown option 'nope' for pruner"),
        ("%hpo_run f --n-trials 3 --patience 0", "patience must be an integer >= 1, got 0"),
        ("%hpo_run f --n-trials 3 --min-delta -1", "min_delta must be a finite number >= 0"),
        (
            "%hpo_run f --n-trials 3 --max-time x",
            "max_time must be a positive number of seconds, got 'x'",
        ),
        ("%hpo_run f --n-trials 3 --space nope:", "spec None is not a mapping or a list"),
        (
            "%hpo_run f --n-trials 3 --space '{x: {type: float, low: 2, high: 1}}'",
            "low 2 is greater than high 1; swap them",
        ),
        ("%hpo_run f --n-trials 3 --enqueue 42", "enqueue takes a dict"),
        ("%hpo_run f --n-trials 3 --enqueue undefined_name", "is neither a variable nor"),
        ("%hpo_run f --n-trials 3 --sampler grid", "the grid sampler needs a search space"),
        (
            "%hpo_run f --n-trials 3 --directions minimize maximize --patience 3",
            "patience needs a single objective",
        ),
        ("%%hpo_objective g --space 42\n1", "search space must be a mapping"),
    ],
)
def test_bad_options_of_every_magic_are_one_line(tmp_path, lifecycle_kernel, cell, message):
    assert message in lifecycle_kernel.usage_error(cell)


@pytest.fixture(scope="module")
def lifecycle_kernel(tmp_path_factory):
    k = Kernel(str(tmp_path_factory.mktemp("magics")))
    k.ok("%load_ext hpo_nb\ndef f(trial):\n    return trial.suggest_float('x', 0, 1)")
    # A database with another study: "nope" is looked for, and missing, in it.
    k.ok("import optuna\noptuna.create_study(study_name='other', storage='sqlite:///hpo.db')")
    yield k
    k.shutdown()

"""The magics in a real IPython kernel, on a real local dask cluster and a SQLite file."""

from __future__ import annotations

import collections
import itertools
import sqlite3
import time

import optuna
import pytest
from _kernel import Kernel
from optuna.trial import TrialState

from hpo_nb.engine.controller import FAIL_REASON_KEY
from hpo_nb.engine.records import TRIAL_KEY

pytestmark = pytest.mark.kernel

SETUP = """
%load_ext hpo_nb
import time, optuna
OFFSET = 2.0
def shift(v):
    return v - OFFSET
"""

QUAD = """%%hpo_objective quad
x = trial.suggest_float("x", -10, 10)
for step in range(3):
    trial.report(shift(x) ** 2 + step, step)
shift(x) ** 2
"""

SLOW = """%%hpo_objective slow
x = trial.suggest_float("x", 0, 1)
for step in range(400):
    time.sleep(0.05)
    trial.report(x, step)
x
"""


@pytest.fixture(scope="module")
def kernel(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("notebook")
    k = Kernel(str(cwd))
    k.cwd = cwd
    k.ok(SETUP)
    k.ok(QUAD)
    k.ok(SLOW)
    yield k
    k.shutdown()


def study_trials(kernel, name):
    return optuna.load_study(study_name=name, storage=f"sqlite:///{kernel.cwd / 'hpo.db'}").trials


def running_in_db(kernel, name):
    path = kernel.cwd / "hpo.db"
    if not path.exists():
        return 0
    with sqlite3.connect(path) as db:
        row = db.execute(
            "SELECT COUNT(*) FROM trials JOIN studies USING (study_id) "
            "WHERE study_name = ? AND state = 'RUNNING'",
            (name,),
        ).fetchone()
    return row[0]


def test_objective_cell_defines_a_plain_function(kernel):
    reply = kernel.ok("quad(optuna.trial.FixedTrial({'x': 5.0}))")
    assert reply.text == "9.0"


def test_run_with_wait_stores_everything_with_plain_optuna(kernel):
    reply = kernel.ok("%hpo_run quad --n-trials 12 --sampler random --seed 0 --wait -o r")
    widgets = [o for o in reply.outputs if "application/vnd.jupyter.widget-view+json" in o["data"]]
    assert len(widgets) == 1, "the live widget is shown once, not again as Out[]"
    assert reply.outputs[0]["data"]["text/plain"].startswith("quad: ")
    assert kernel.ok("print(r.state.value, r.n_finished)").stdout.split() == ["completed", "12"]
    trials = study_trials(kernel, "quad")
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 12
    for t in trials:
        value = (t.params["x"] - 2.0) ** 2
        assert t.value == pytest.approx(value)
        assert t.intermediate_values == {s: pytest.approx(value + s) for s in range(3)}
    best = kernel.ok("print(r.best_value)").stdout.strip()
    assert float(best) == pytest.approx(min(t.value for t in trials))


def test_the_kernel_stays_free_while_a_study_runs(kernel):
    started = kernel.ok("%hpo_run slow --n-trials 3 --study free -o h")
    assert started.outputs  # the widget
    reply = kernel.ok("print(h.state.value, h.n_finished, 6 * 7)")
    state, finished, answer = reply.stdout.split()
    assert state in ("starting", "running") and int(finished) < 3 and answer == "42"
    kernel.ok("h.stop(); h.wait(30)")
    assert running_in_db(kernel, "free") == 0


def worker_pids(kernel):
    code = (
        "import os, hpo_nb.execution.cluster as hc\n"
        "print(sorted(hc.get_client().run(os.getpid).values()))"
    )
    return kernel.ok(code).stdout.strip()


def test_interrupt_during_wait_leaves_no_running_trial(kernel):
    kernel.ok("%hpo_run quad --n-trials 1 --study before_interrupt --wait")
    pids = worker_pids(kernel)
    msg_id = kernel.submit("%hpo_run slow --n-trials 6 --study interrupted --wait")
    deadline = time.monotonic() + 60
    while running_in_db(kernel, "interrupted") < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert running_in_db(kernel, "interrupted") == 2
    kernel.interrupt()
    reply = kernel.collect(msg_id)
    assert reply.status == "error"
    assert running_in_db(kernel, "interrupted") == 0
    trials = study_trials(kernel, "interrupted")
    assert {t.state for t in trials} == {TrialState.FAIL}
    assert {t.system_attrs[FAIL_REASON_KEY] for t in trials} == {"cancelled: interrupted"}
    # Jupyter signals the kernel's whole process group; the local workers are not in it.
    assert worker_pids(kernel) == pids
    reply = kernel.ok(
        "%hpo_run quad --n-trials 2 --study after_interrupt --wait -o r2\nprint(r2.state.value)"
    )
    assert reply.stdout.strip() == "completed"


DROP_A_CTRL_C_AFTER_SHOWING = """
import signal, weakref, hpo_nb.frontends.magics as hm
show_run = hm.show_run
def dropping(handle, execution_count):
    # The SIGINT handler runs in a weakref callback, where Python drops its KeyboardInterrupt.
    show_run(handle, execution_count)
    while handle.progress.running < 2:
        time.sleep(0.05)
    class Thing: pass
    thing = Thing()
    ref = weakref.ref(thing, lambda _: signal.raise_signal(signal.SIGINT))
    del thing
hm.show_run = dropping
"""


def test_a_ctrl_c_that_python_drops_still_stops_a_waiting_cell(kernel):
    kernel.ok(DROP_A_CTRL_C_AFTER_SHOWING)
    try:
        reply = kernel.execute("%hpo_run slow --n-trials 6 --study dropped --wait")
        assert reply.status == "error" and reply.error["ename"] == "KeyboardInterrupt"
    finally:
        kernel.ok("hm.show_run = show_run")
    assert "Exception ignored" in reply.stderr  # Python did drop it
    trials = study_trials(kernel, "dropped")
    assert len(trials) >= 2
    assert {t.system_attrs[FAIL_REASON_KEY] for t in trials} == {"cancelled: interrupted"}


def test_resume_counts_the_total(kernel):
    kernel.ok("%hpo_run quad --n-trials 3 --study resumed --wait")
    kernel.ok("%hpo_run quad --n-trials 5 --study resumed --wait -o r3")
    assert len(study_trials(kernel, "resumed")) == 5
    assert kernel.ok("print(r3.progress.finished_before)").stdout.strip() == "3"


def test_redefining_the_cell_replaces_the_objective(kernel):
    kernel.ok("%%hpo_objective twice --direction maximize\ntrial.suggest_float('x', 0, 1) * 2")
    kernel.ok("%%hpo_objective twice --direction maximize\ntrial.suggest_float('x', 0, 1) * 3")
    kernel.ok("%hpo_run twice --n-trials 3 --wait")
    for t in study_trials(kernel, "twice"):
        assert t.value == pytest.approx(3 * t.params["x"])


def test_failing_objective_fails_its_trials_with_the_reason(kernel):
    kernel.ok("%%hpo_objective broken\nx = trial.suggest_float('x', 0, 1)\nmissing_name + x")
    reply = kernel.ok("%hpo_run broken --n-trials 3 --wait -o rb\nprint(rb.progress.last_failure)")
    assert "NameError: name 'missing_name' is not defined" in reply.stdout
    trials = study_trials(kernel, "broken")
    assert [t.state for t in trials] == [TrialState.FAIL] * 3
    assert {t.system_attrs[FAIL_REASON_KEY] for t in trials} == {
        "NameError: name 'missing_name' is not defined"
    }


HANGS_ONCE = """%%hpo_objective hangs_once
import pathlib
x = trial.suggest_float("x", 0, 1)
trial.set_user_attr("start", time.time())
marker = pathlib.Path("hung-once")
if not marker.exists():
    marker.touch()
    time.sleep(120)
trial.set_user_attr("end", time.time())
x
"""


def test_the_magics_execution_flags_take_effect(kernel):
    """The flags users type reach the run: a hung trial is killed by --trial-timeout, its
    parameters run again (--retries), one trial at a time (--concurrency 1)."""
    kernel.ok(HANGS_ONCE)
    kernel.ok(
        "%hpo_run hangs_once --n-trials 3 --retries 1 --trial-timeout 2 --concurrency 1 --wait",
        timeout=180,
    )
    trials = study_trials(kernel, "hangs_once")
    (hung,) = [t for t in trials if t.state == TrialState.FAIL]
    assert hung.system_attrs[FAIL_REASON_KEY] == "timeout after 2 s"
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(complete) == 3  # the failure was retried: it does not count
    (again,) = [t for t in complete if t.system_attrs[TRIAL_KEY].get("retry_of") == hung.number]
    assert again.params == hung.params
    spans = sorted((t.user_attrs["start"], t.user_attrs["end"]) for t in complete)
    assert spans[0][0] >= hung.user_attrs["start"] + 2  # nothing ran beside the hung trial
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans))  # one at a time


BAD_INPUT = [
    ("%hpo_run nothing --n-trials 3", "unknown objective 'nothing': define it with"),
    ("%hpo_run quad --n-trials 0", "argument --n-trials: n_trials must be an integer >= 1, got 0"),
    ("%hpo_run quad --n-trials many", "n_trials must be an integer >= 1, got 'many'"),
    ("%hpo_run quad", "the following arguments are required: --n-trials"),
    ("%hpo_run quad --n-trials 3 --sampler bayes", "argument --sampler: invalid choice: 'bayes'"),
    ("%hpo_run quad --n-trials 3 --pruner early", "argument --pruner: invalid choice: 'early'"),
    ("%hpo_run quad --n-trials 3 --timeout -5", "timeout must be a positive number of seconds"),
    ("%hpo_run quad --n-trials 3 --workers two", "workers must be an integer >= 1, got 'two'"),
    ("%hpo_run quad --n-trials 3 --unknown 1", "unrecognized arguments: --unknown 1"),
    ("%hpo_run quad --n-trials 3 --gpus 0", "--gpus 0 picks the GPUs of a cuda cluster"),
    ("%hpo_run quad --n-trials 3 --cluster cuda", "--cluster cuda needs an NVIDIA GPU"),
    (
        "%hpo_run quad --n-trials 3 --storage postgresql://127.0.0.1:1/none",
        "cannot open storage postgresql://127.0.0.1:1/none",
    ),
    (
        "%hpo_run quad --n-trials 3 --direction maximize",
        "optimizes minimize but the objective declares maximize",
    ),
    (
        "%%hpo_objective bad\nx = trial.suggest_float('x', 0, 1)\ny = = x\n",
        "syntax error in objective 'bad', line 2: invalid syntax: y = = x",
    ),
    ("%%hpo_objective bad --direction up\n1", "argument --direction: invalid choice: 'up'"),
    ("%%hpo_objective 9lives\n1", "'9lives' is not a valid objective name"),
]


@pytest.mark.parametrize(("cell", "message"), BAD_INPUT)
def test_bad_input_is_one_line_and_harmless(kernel, cell, message):
    before = collections.Counter(t.state for t in study_trials(kernel, "quad"))
    assert message in kernel.usage_error(cell)
    assert collections.Counter(t.state for t in study_trials(kernel, "quad")) == before


def test_unload_stops_running_studies_and_closes_the_cluster(kernel):
    kernel.ok("%hpo_run slow --n-trials 4 --study unloaded -o hu")
    deadline = time.monotonic() + 60
    while running_in_db(kernel, "unloaded") < 1 and time.monotonic() < deadline:
        time.sleep(0.1)
    reply = kernel.ok(
        "%unload_ext hpo_nb\nimport hpo_nb.execution.cluster as c\n"
        "print(hu.state.value, not c._local)"
    )
    assert reply.stdout.split() == ["stopped", "True"]
    assert running_in_db(kernel, "unloaded") == 0
    kernel.ok("%load_ext hpo_nb")  # loading again works


def test_kernel_shutdown_leaves_no_running_trial(tmp_path):
    k = Kernel(str(tmp_path))
    k.cwd = tmp_path
    try:
        k.ok(SETUP)
        k.ok(SLOW)
        k.ok("%hpo_run slow --n-trials 4 --study shutdown")
        deadline = time.monotonic() + 60
        while running_in_db(k, "shutdown") < 1 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert running_in_db(k, "shutdown") >= 1
    finally:
        k.shutdown()
    assert running_in_db(k, "shutdown") == 0
    reasons = {t.system_attrs[FAIL_REASON_KEY] for t in study_trials(k, "shutdown")}
    assert reasons == {"cancelled: the kernel shut down"}


def test_space_on_the_cell_and_best_into_a_new_cell(kernel):
    kernel.ok(
        "space = {'optimizer': ['sgd', 'adam'],\n"
        "         'lr': {'type': 'float', 'low': 1e-4, 'high': 1e-1, 'log': True},\n"
        "         'momentum': {'type': 'float', 'low': 0, 'high': 0.9,\n"
        "                      'when': {'optimizer': 'sgd'}}}"
    )
    kernel.ok(
        "%%hpo_objective spaced --space space\nparams['lr'] * (1 + params.get('momentum', 0))"
    )
    kernel.ok("%hpo_run spaced --n-trials 10 --sampler random --seed 1 --wait")
    trials = study_trials(kernel, "spaced")
    assert len(trials) == 10
    for t in trials:
        assert ("momentum" in t.params) == (t.params["optimizer"] == "sgd")
    reply = kernel.ok("%hpo_best spaced --cell")
    best = min(trials, key=lambda t: t.value)
    assert f"best value {best.value:.6g} (trial {best.number})" in reply.stdout
    (payload,) = [p for p in reply.payload if p.get("source") == "set_next_input"]
    assert payload["text"].startswith("best_params = {") and "'lr': " in payload["text"]

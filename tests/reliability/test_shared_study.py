"""Two kernels run one study at once on a database server: no number twice, every trial
counted once."""

from __future__ import annotations

import collections
import re
import uuid

import optuna
import pytest
from _kernel import Kernel

from hpo_nb.engine.records import TRIAL_KEY

pytestmark = pytest.mark.kernel

CELL = """%%hpo_objective shared_square
import time
x = trial.suggest_float("x", -1.0, 1.0)
time.sleep(0.05)
x * x
"""


SERVERS = {
    "postgresql": "postgresql+psycopg://127.0.0.1:5432/test",
    "mysql": "mysql+pymysql://root@127.0.0.1:3306/test",
}


@pytest.mark.parametrize("server", list(SERVERS))
def test_two_kernels_share_one_study_exactly(tmp_path, server):
    url = SERVERS[server]
    name = f"shared-{uuid.uuid4().hex[:8]}"
    kernels = [Kernel(str(tmp_path)), Kernel(str(tmp_path))]
    try:
        for kernel in kernels:
            kernel.ok("%load_ext hpo_nb")
            kernel.ok(CELL)
        cells = [
            kernel.submit(
                f"%hpo_run shared_square --study {name} --storage {url} --n-trials 30 "
                "--workers 2 --wait -o r\nprint('counts', r.progress.complete, r.progress.failed)"
            )
            for kernel in kernels
        ]
        replies = [k.collect(cell, timeout=300) for k, cell in zip(kernels, cells, strict=True)]
        ran = []
        for reply in replies:
            assert reply.status == "ok", reply.error_text or reply.stderr
            complete, failed = map(int, re.search(r"counts (\d+) (\d+)", reply.stdout).groups())
            assert failed == 0
            ran.append(complete)
        trials = optuna.load_study(study_name=name, storage=url).get_trials(deepcopy=False)
        states = collections.Counter(t.state.name for t in trials)
        assert states == {"COMPLETE": len(trials)}, states
        numbers = sorted(t.number for t in trials)
        assert numbers == list(range(len(trials)))  # no number twice, none skipped
        # Each kernel's count is exact: the study holds what the two runs finished, no more.
        sessions = collections.Counter(t.system_attrs[TRIAL_KEY]["session"] for t in trials)
        assert len(sessions) == 2
        assert sorted(sessions.values()) == sorted(ran)
        assert sum(ran) == len(trials) and min(ran) > 0
    finally:
        for kernel in kernels:
            kernel.shutdown()
        if name in optuna.get_all_study_names(url):
            optuna.delete_study(study_name=name, storage=url)

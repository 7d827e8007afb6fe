"""The bad-input catalogue of issue 24: each case is refused in exactly one line and leaves the
storage as it was (an objective's bad return fails its trial, in one line, and the study goes
on).

The magics run in an in-process IPython shell (``InteractiveShell``), in a folder holding a
SQLite storage with three studies; what the shell shows for a case (its stdout and stderr) must
be one line, ``UsageError: ...``, naming what was wrong, and every file of the folder (each
SQLite database compared by the rows of all its tables) must be as it was. No dask cluster is
started but for the objective-return cases, which share two runs.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import sqlite3
import warnings
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
from optuna.storages import RDBStorage

import hpo_nb
from hpo_nb import RunState
from hpo_nb.engine.records import CONFIG_KEY, FAIL_REASON_KEY
from hpo_nb.frontends.console import Console

SQLITE_MAGIC = b"SQLite format 3\x00"
UNREACHABLE_PG = "postgresql+psycopg://127.0.0.1:1/test"
UNREACHABLE_MYSQL = "mysql+pymysql://root@127.0.0.1:1/test"

OBJECTIVE_CELL = """x = trial.suggest_float("x", -1.0, 1.0)
(x - 0.2) ** 2
"""


# -- the folder, its storage and the shell ---------------------------------------------------
def digest(folder: Path) -> dict[str, str]:
    """Every file under ``folder``: a SQLite database as the rows of all its tables (merely
    opening one may change its bytes, and leaves -wal and -shm files), others as their bytes."""
    out = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        if path.name.endswith(("-wal", "-shm", "-journal")):
            continue
        data = path.read_bytes()
        if data.startswith(SQLITE_MAGIC):
            data = _rows(path)
        out[str(path.relative_to(folder))] = hashlib.sha256(data).hexdigest()
    return out


def _rows(path: Path) -> bytes:
    conn = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True)
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        rows = {t: sorted(map(repr, conn.execute(f'SELECT * FROM "{t}"'))) for t in sorted(tables)}
    finally:
        conn.close()
    return json.dumps(rows).encode()


def fill(url: str) -> None:
    """Study ``quadratic`` (started by hpo_nb, as its recorded options say) and ``plain``
    (created by Optuna), three complete trials each; study ``orphan`` runs an objective this
    kernel does not have."""
    storage = RDBStorage(url)
    x = optuna.distributions.FloatDistribution(-1.0, 1.0)
    for name in ("quadratic", "plain", "orphan"):
        study = optuna.create_study(study_name=name, storage=storage)
        for value in (0.1, 0.5, -0.5):
            study.add_trial(
                optuna.trial.create_trial(params={"x": value}, distributions={"x": x}, value=value)
            )
    for name, objective in (("quadratic", "quadratic"), ("orphan", "gone")):
        config = hpo_nb.RunOptions(n_trials=3).to_json(recorded_only=True)
        study_id = storage.get_study_id_from_name(name)
        storage.set_study_system_attr(study_id, CONFIG_KEY, {**config, "objective": objective})
    storage.engine.dispose()


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Iterator[Path]:
    """The notebook's folder (the working directory): ``hpo.db`` and an archive of its
    ``quadratic`` study, ``good.zip``, and a text file."""
    path = tmp_path_factory.mktemp("notebook")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(path)
        fill("sqlite:///hpo.db")
        hpo_nb.export_archive("quadratic", "good.zip", "sqlite:///hpo.db")
        Path("notes.txt").write_text("not a database\n")
        yield path


@pytest.fixture(scope="module")
def shell(folder, tmp_path_factory) -> Iterator[Any]:
    """An in-process IPython shell with hpo_nb loaded and objective ``quadratic`` defined."""
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("IPYTHONDIR", str(tmp_path_factory.mktemp("ipython")))
        config = Config()
        config.HistoryManager.enabled = False
        config.InteractiveShell.colors = "NoColor"
        ipython = InteractiveShell.instance(config=config)
        try:
            ok(ipython, "%load_ext hpo_nb")
            ok(ipython, f"%%hpo_objective quadratic\n{OBJECTIVE_CELL}")
            yield ipython
        finally:
            ipython.run_line_magic("unload_ext", "hpo_nb")
            InteractiveShell.clear_instance()


def execute(ipython: Any, cell: str) -> tuple[bool, list[str]]:
    """Run ``cell``; whether it succeeded, and the non-empty lines it showed."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        result = ipython.run_cell(cell, store_history=False, silent=False)
    text = out.getvalue() + err.getvalue()
    return bool(result.success), [line for line in text.splitlines() if line.strip()]


def ok(ipython: Any, cell: str) -> None:
    success, lines = execute(ipython, cell)
    assert success, lines


def refused(ipython: Any, folder: Path, cell: str, message: str) -> None:
    """``cell`` shows one line, ``UsageError: ...`` with ``message``, and changes no file."""
    before = digest(folder)
    success, lines = execute(ipython, cell)
    if success:  # a run started: stop it before the case fails
        hpo_nb.stop_all("a catalogue case started a run", timeout=30.0)
    assert not success
    assert len(lines) == 1, "\n".join(lines[-12:])
    assert lines[0].startswith("UsageError: "), lines[0]
    assert message in lines[0], lines[0]
    assert digest(folder) == before


# -- magics: flags and values ----------------------------------------------------------------
RUN = "%hpo_run quadratic --n-trials 3"
MAGIC_CASES = [
    # %hpo_run
    ("%hpo_run", "the following arguments are required: name, --n-trials", "run: nothing"),
    ("%hpo_run quadratic", "the following arguments are required: --n-trials", "run: no target"),
    ("%hpo_run nope --n-trials 3", "unknown objective 'nope'", "run: unknown objective"),
    (f"{RUN} --bogus 1", "unrecognized arguments: --bogus 1", "run: unknown flag"),
    (
        "%hpo_run quadratic --n-trials abc",
        "n_trials must be an integer >= 1, got 'abc'",
        "run: n-trials text",
    ),
    (
        "%hpo_run quadratic --n-trials 0",
        "n_trials must be an integer >= 1, got 0",
        "run: n-trials 0",
    ),
    (
        "%hpo_run quadratic --n-trials -3",
        "n_trials must be an integer >= 1, got -3",
        "run: n-trials negative",
    ),
    (
        "%hpo_run quadratic --n-trials 2.5",
        "n_trials must be an integer >= 1, got '2.5'",
        "run: n-trials float",
    ),
    (
        "%hpo_run quadratic --n-trials",
        "argument --n-trials: expected one argument",
        "run: n-trials no value",
    ),
    (
        f"{RUN} --sampler bayes",
        "argument --sampler: invalid choice: 'bayes'",
        "run: unknown sampler",
    ),
    (f"{RUN} --pruner never", "argument --pruner: invalid choice: 'never'", "run: unknown pruner"),
    (f"{RUN} --sampler-opt n_startup_trials", "is not key=value", "run: sampler-opt without ="),
    (f"{RUN} --sampler-opt =5", "is not key=value", "run: sampler-opt without key"),
    (
        f"{RUN} --sampler tpe --sampler-opt n_startup_trials=abc",
        "n_startup_trials must be of type int",
        "run: sampler-opt type",
    ),
    (
        f"{RUN} --sampler tpe --sampler-opt nope=1",
        "unknown option 'nope' for sampler tpe",
        "run: sampler-opt unknown",
    ),
    (
        f"{RUN} --sampler tpe --sampler-opt seed=1",
        "pass the seed with --seed",
        "run: sampler-opt seed",
    ),
    (
        f"{RUN} --pruner median --pruner-opt n_warmup_steps=x",
        "n_warmup_steps must be of type int",
        "run: pruner-opt type",
    ),
    (
        f"{RUN} --pruner none --pruner-opt n_warmup_steps=3",
        "unknown option 'n_warmup_steps' for pruner none",
        "run: pruner-opt for none",
    ),
    (
        f"{RUN} --enqueue \"{{'x': 99}}\"",
        "--enqueue gives x=99, outside its space",
        "run: enqueue outside",
    ),
    (
        f"{RUN} --enqueue \"{{'zz': 1}}\"",
        "--enqueue names parameter 'zz'",
        "run: enqueue unknown name",
    ),
    (
        f"{RUN} --enqueue 'not json'",
        "--enqueue 'not json' is neither a variable nor a literal",
        "run: enqueue bad text",
    ),
    (
        f"{RUN} --enqueue \"{{'x': 0.5\"",
        "is neither a variable nor a literal",
        "run: enqueue unclosed",
    ),
    (
        f"{RUN} --enqueue '[1, 2]'",
        "enqueue takes a dict of parameter values, or a list of them",
        "run: enqueue list of ints",
    ),
    (
        f"{RUN} --enqueue '\"x\"'",
        "enqueue takes a dict of parameter values, or a list of them",
        "run: enqueue string",
    ),
    (
        f"{RUN} --enqueue '{{[1]: 2}}'",
        "is neither a variable nor a literal",
        "run: enqueue unhashable key",
    ),
    (f"{RUN} --enqueue '{{\"x\": NaN}}'", "outside its space", "run: enqueue NaN"),
    (
        f"{RUN} --space '{{x: {{type: float, low: 1, high: 0}}}}'",
        "low 1 is greater than high 0",
        "run: space low > high",
    ),
    (f"{RUN} --space 'x: [unclosed'", "YAML syntax error", "run: space YAML error"),
    (f"{RUN} --space missing.yaml", "no file missing.yaml", "run: space file missing"),
    (f"{RUN} --space '[1, 2]'", "search space must be a mapping", "run: space a list"),
    (f"{RUN} --space '!!float'", "a YAML value cannot be read", "run: space YAML tag"),
    (f"{RUN} --space 'x: 2001-02-30'", "day is out of range for month", "run: space a bad date"),
    (f"{RUN} --space '{'[' * 5000}'", "nested too deeply", "run: space nested too deeply"),
    (
        # its own study and storage: today it runs, and must leave the others as they are
        f"{RUN} --study narrowed --storage narrow.db "
        "--narrow '{x: {type: float, low: 5, high: 9}}'",
        "outside",
        "run: narrow outside the code's range",
    ),
    (f"{RUN} --concurrency 0", "concurrency must be an integer >= 1, got 0", "run: concurrency 0"),
    (f"{RUN} --workers 0", "workers must be an integer >= 1, got 0", "run: workers 0"),
    (
        f"{RUN} --trial-timeout -1",
        "trial_timeout must be a positive number of seconds",
        "run: trial-timeout negative",
    ),
    (
        f"{RUN} --trial-timeout soon",
        "trial_timeout must be a positive number of seconds, got 'soon'",
        "run: trial-timeout text",
    ),
    (
        f"{RUN} --timeout 0",
        "timeout must be a positive number of seconds, got 0.0",
        "run: timeout 0",
    ),
    (
        f"{RUN} --max-time nan",
        "max_time must be a positive number of seconds, got nan",
        "run: max-time nan",
    ),
    (
        f"{RUN} --min-delta inf",
        "min_delta must be a finite number >= 0, got inf",
        "run: min-delta inf",
    ),
    (
        f"{RUN} --min-delta -0.1",
        "min_delta must be a finite number >= 0",
        "run: min-delta negative",
    ),
    (f"{RUN} --patience 0", "patience must be an integer >= 1, got 0", "run: patience 0"),
    (f"{RUN} --retries -1", "retries must be an integer >= 0, got -1", "run: retries negative"),
    (
        f"{RUN} --stop-after-failures x",
        "stop_after_failures must be an integer >= 0",
        "run: stop-after-failures text",
    ),
    (f"{RUN} --seed 1.5", "seed must be an integer, got '1.5'", "run: seed float"),
    (f"{RUN} --ci-trials 0", "ci_trials must be an integer >= 1, got 0", "run: ci-trials 0"),
    (
        f"{RUN} --direction sideways",
        "argument --direction: invalid choice: 'sideways'",
        "run: direction unknown",
    ),
    (
        f"{RUN} --direction minimize --directions minimize",
        "either direction or directions",
        "run: direction and directions",
    ),
    (
        f"{RUN} --direction maximize",
        "optimizes minimize but the objective declares maximize",
        "run: direction against the study",
    ),
    (
        f"{RUN} --patience 3 --directions minimize maximize",
        "patience needs a single objective",
        "run: patience with two objectives",
    ),
    (f"{RUN} --gpus 0", "--gpus 0 picks the GPUs of a cuda cluster", "run: gpus without a GPU"),
    (f"{RUN} --study ''", "study must be a non-empty string", "run: empty study name"),
    (f"{RUN} --storage ''", "storage must be a non-empty string", "run: empty storage"),
    (f"{RUN} -o", "argument -o: expected one argument", "run: -o without a name"),
    (f"{RUN} extra", "unrecognized arguments: extra", "run: extra positional"),
    (f'{RUN} --study "my study', "No closing quotation: close the quote", "run: quote left open"),
    (
        f"{RUN} --enqueue '{'~' * 10_000}1'",
        "is neither a variable nor a literal",
        "run: enqueue nested too deeply",
    ),
    (
        f"{RUN} --sampler tpe --sampler-opt 'gamma={{[1]: 2}}'",
        "gamma",
        "run: sampler-opt unhashable literal",
    ),
    (
        f"{RUN} --sampler tpe --sampler-opt 'gamma={'~' * 10_000}1'",
        "gamma",
        "run: sampler-opt nested too deeply",
    ),
    # %hpo_resume
    ("%hpo_resume", "the following arguments are required: study", "resume: nothing"),
    ("%hpo_resume nope", "no study 'nope' in sqlite:///hpo.db", "resume: unknown study"),
    (
        "%hpo_resume plain",
        "study 'plain' was not started by hpo_nb",
        "resume: study hpo_nb did not start",
    ),
    (
        "%hpo_resume orphan",
        "study 'orphan' runs objective 'gone': define it",
        "resume: objective not defined",
    ),
    (
        "%hpo_resume quadratic --n-trials 0",
        "n_trials must be an integer >= 1, got 0",
        "resume: n-trials 0",
    ),
    ("%hpo_resume quadratic --sampler-opt x", "is not key=value", "resume: sampler-opt without ="),
    (
        "%hpo_resume quadratic --enqueue \"{'x': 5}\"",
        "--enqueue gives x=5, outside its space",
        "resume: enqueue outside",
    ),
    ("%hpo_resume quadratic --storage typo.db", "no database at typo.db", "resume: storage typo"),
    # %hpo_panel
    ("%hpo_panel", "the following arguments are required: name", "panel: nothing"),
    (
        "%hpo_panel nothing",
        "'nothing' is neither an objective nor a study in sqlite:///hpo.db",
        "panel: unknown name",
    ),
    (
        "%hpo_panel quadratic --n-trials x",
        "n_trials must be an integer >= 1, got 'x'",
        "panel: n-trials text",
    ),
    (
        "%hpo_panel quadratic "
        "--space '{x: {type: float, low: 0.1, high: 1, log: true, step: 0.1}}'",
        "log and step 0.1 cannot be combined",
        "panel: space log with step",
    ),
    ("%hpo_panel quadratic --storage nodir/x.db", "folder", "panel: storage folder missing"),
    # %hpo_import
    ("%hpo_import", "the following arguments are required: path", "import: nothing"),
    ("%hpo_import nothere.zip", "no archive at nothere.zip", "import: no file"),
    (
        "%hpo_import good.zip",
        "study 'quadratic' already exists in sqlite:///hpo.db",
        "import: name taken",
    ),
    ("%hpo_import good.zip --study ''", "the study name is empty", "import: empty study name"),
    (
        "%hpo_import good.zip --study plain",
        "study 'plain' already exists",
        "import: new name taken",
    ),
    ("%hpo_import good.zip --storage nodir/x.db", "folder", "import: storage folder missing"),
    ("%hpo_import good.zip --bogus", "unrecognized arguments: --bogus", "import: unknown flag"),
    # %hpo_export
    ("%hpo_export", "the following arguments are required: study", "export: nothing"),
    (
        "%hpo_export quadratic",
        "give --format and --out, or --plots DIR",
        "export: nothing to write",
    ),
    (
        "%hpo_export quadratic --format xml --out x.xml",
        "argument --format: invalid choice: 'xml'",
        "export: unknown format",
    ),
    (
        "%hpo_export quadratic --format json",
        "the following arguments are required: --out",
        "export: format without out",
    ),
    ("%hpo_export nope --format json --out x.json", "no study 'nope'", "export: unknown study"),
    (
        "%hpo_export quadratic --archive nodir/x.zip",
        "folder nodir does not exist",
        "export: archive folder missing",
    ),
    (
        "%hpo_export quadratic --format csv --out nodir/x.csv",
        "folder nodir does not exist",
        "export: out folder missing",
    ),
    (
        "%hpo_export quadratic --plot-formats png",
        "--plot-formats needs --plots DIR",
        "export: plot-formats alone",
    ),
    (
        "%hpo_export quadratic --plots out --plot-formats gif",
        "invalid choice: 'gif'",
        "export: plot format unknown",
    ),
    (
        "%hpo_export quadratic --format json --out x.json --storage typo.db",
        "no database at typo.db",
        "export: storage typo",
    ),
    # %hpo_list, %hpo_status, %hpo_stop, %hpo_best, %hpo_delete
    ("%hpo_list --storage typo.db", "no database at typo.db", "list: storage typo"),
    ("%hpo_list --storage 'typo.db'", "no database at typo.db:", "list: storage typo quoted"),
    ("%hpo_list extra", "unrecognized arguments: extra", "list: extra positional"),
    (
        "%hpo_list --storage",
        "argument --storage: expected one argument",
        "list: storage without value",
    ),
    ("%hpo_status nope", "no study 'nope' in sqlite:///hpo.db", "status: unknown study"),
    ("%hpo_status quadratic --storage typo.db", "no database at typo.db", "status: storage typo"),
    ("%hpo_status a b", "unrecognized arguments: b", "status: two studies"),
    (
        "%hpo_stop",
        "no study is running in this kernel: name the study to stop",
        "stop: nothing running",
    ),
    ("%hpo_stop nope", "no study 'nope'", "stop: unknown study"),
    ("%hpo_stop quadratic --now --storage typo.db", "no database at typo.db", "stop: storage typo"),
    ("%hpo_stop quadratic --later", "unrecognized arguments: --later", "stop: unknown flag"),
    ("%hpo_status 'my study", "No closing quotation", "status: quote left open"),
    ("%hpo_best", "the following arguments are required: study", "best: nothing"),
    ("%hpo_best nope", "no study 'nope'", "best: unknown study"),
    (
        "%hpo_delete quadratic",
        "deleting 'quadratic' removes all its trials: add --yes",
        "delete: without --yes",
    ),
    ("%hpo_delete nope --yes", "no study 'nope'", "delete: unknown study"),
    # %%hpo_objective
    (
        "%%hpo_objective\nx = 1\nx",
        "the following arguments are required: name",
        "objective: no name",
    ),
    (
        "%%hpo_objective 1bad\nx = 1\nx",
        "'1bad' is not a valid objective name",
        "objective: bad name",
    ),
    (
        "%%hpo_objective class\nx = 1\nx",
        "'class' is not a valid objective name",
        "objective: keyword name",
    ),
    (
        "%%hpo_objective f --direction up\n1",
        "argument --direction: invalid choice: 'up'",
        "objective: direction unknown",
    ),
    (
        "%%hpo_objective f --direction minimize --directions maximize\n1",
        "give either --direction or --directions",
        "objective: direction and directions",
    ),
    ("%%hpo_objective f\n# nothing yet\n", "objective 'f' is empty", "objective: empty cell"),
    (
        "%%hpo_objective f\nx = (\n",
        "syntax error in objective 'f', line 1",
        "objective: syntax error",
    ),
    ("%%hpo_objective f\nx = 1", "objective 'f' has no value", "objective: no value"),
    ("%%hpo_objective f\nyield 1", "objective 'f' uses 'yield'", "objective: yield"),
    (
        "%%hpo_objective f --space '{x: {type: int, low: 0, high: 10, step: 3}}'\n1",
        "step 3 does not divide [0, 10]; use high 9",
        "objective: space step",
    ),
    ("%%hpo_objective f --space '{}'\n1", "search space is empty", "objective: space empty"),
]


@pytest.mark.parametrize(
    ("cell", "message"),
    [pytest.param(*case[:2], id=case[2], marks=case[3:]) for case in MAGIC_CASES],
)
def test_a_bad_magic_is_one_line_and_changes_nothing(shell, folder, cell, message):
    refused(shell, folder, cell, message)


# -- search spaces, through %hpo_run --space VARIABLE -----------------------------------------
def _f(**spec: Any) -> dict[str, Any]:
    return {"x": {"type": "float", **spec}}


SPACE_CASES = [
    (_f(low=1.0, high=0.0), "'x': low 1.0 is greater than high 0.0; swap them", "low > high"),
    (_f(low=0.0, high=1.0, log=True), "log scale needs low > 0, got low 0.0", "log with low 0"),
    (_f(low=-1.0, high=1.0, log=True), "log scale needs low > 0, got low -1.0", "log with low < 0"),
    (
        {"n": {"type": "int", "low": 0, "high": 8, "log": True}},
        "log scale needs low >= 1",
        "int log with low 0",
    ),
    (
        _f(low=0.0, high=1.0, step=0.3),
        "step 0.3 does not divide [0.0, 1.0]; use high 0.9",
        "float step does not divide",
    ),
    (
        {"n": {"type": "int", "low": 0, "high": 10, "step": 4}},
        "step 4 does not divide [0, 10]",
        "int step does not divide",
    ),
    (_f(low=0.0, high=1.0, step=0), "step 0 is not positive", "step 0"),
    (_f(low=0.0, high=1.0, step=-0.1), "step -0.1 is not positive", "negative step"),
    (
        _f(low=0.1, high=1.0, log=True, step=0.1),
        "log and step 0.1 cannot be combined",
        "log with step",
    ),
    ({"c": []}, "choices is empty", "empty categorical"),
    (
        {"c": {"type": "categorical", "choices": "ab"}},
        "choices 'ab' is not a list",
        "choices a string",
    ),
    ({"c": ["a", "a"]}, "choice 'a' is listed twice", "duplicate choice"),
    ({"c": [{"a": 1}]}, "choice {'a': 1} has type dict", "choice of a dict"),
    ({"x": {"low": 0, "high": 1}}, "missing 'type'", "missing type"),
    ({"x": {"type": "double", "low": 0, "high": 1}}, "unknown type 'double'", "unknown type"),
    (_f(low=0, high=1, scale="log"), "unknown key 'scale' for a float", "unknown key"),
    (_f(low=0), "missing 'high'", "missing high"),
    (_f(low="a", high=1), "low 'a' is not a number", "low a string"),
    (_f(low=0, high=float("inf")), "high inf is not a number", "high infinite"),
    (_f(low=True, high=2), "low True is not a number", "low a bool"),
    (
        {"n": {"type": "int", "low": 0.5, "high": 3}},
        "int low 0.5 is not a whole number",
        "int low not whole",
    ),
    (
        {"n": {"type": "int", "low": 0, "high": 10**400}},
        "high 100000000000000000000000000000... (401 characters) is not a number",
        "int high beyond a float",
    ),
    (_f(low=-1e308, high=1e308), "is wider than a float can hold", "range wider than a float"),
    (
        _f(low=0.0, high=1e300, step=1e-300),
        "step 1e-300 is too small",
        "step too small for the range",
    ),
    (
        _f(low=38236.5, high=466038.0, step=5e-14),
        "step 5e-14 is too small for [38236.5, 466038.0] (a float keeps 15 digits)",
        "step below a float's precision",
    ),
    (
        _f(low=-1.192092896e-07, high=1.5e16, step=1.5e16),
        "do not reach 1.5e+16 exactly in floats; round low or step to fewer digits",
        "a grid a float cannot hold",
    ),
    (_f(low=0, high=1, log="yes"), "log 'yes' is not true or false", "log not a bool"),
    ({"": [1, 2]}, "parameter name '' is not a non-empty string", "empty name"),
    ({"x": 5}, "spec 5 is not a mapping or a list of choices", "spec a number"),
    (
        {"m": {"type": "float", "low": 0, "high": 1, "when": {"o": "sgd"}}, "o": ["sgd", "adam"]},
        "when names 'o', defined later",
        "condition on a later parameter",
    ),
    (
        {"m": {"type": "float", "low": 0, "high": 1, "when": {"zz": 1}}},
        "when names unknown parameter 'zz'",
        "condition on an unknown parameter",
    ),
    (
        {
            "o": ["sgd", "adam"],
            "m": {"type": "float", "low": 0, "high": 1, "when": {"o": "rmsprop"}},
        },
        "when 'o' is 'rmsprop', which 'o' never takes",
        "condition on a value never taken",
    ),
    (
        {"o": ["sgd"], "m": {"type": "float", "low": 0, "high": 1, "when": {"m": 1}}},
        "when names the parameter itself",
        "condition on itself",
    ),
    (
        {"o": ["sgd"], "m": {"type": "float", "low": 0, "high": 1, "when": ["o"]}},
        "when ['o'] is not a mapping",
        "condition not a mapping",
    ),
    (
        {"o": ["sgd"], "m": {"type": "float", "low": 0, "high": 1, "when": {"o": []}}},
        "when 'o' lists no values",
        "condition without values",
    ),
    ({}, "search space is empty", "empty space"),
    ([1, 2], "search space must be a mapping", "a list"),
]


@pytest.mark.parametrize(
    ("space", "message"),
    [pytest.param(*case[:2], id=case[2], marks=case[3:]) for case in SPACE_CASES],
)
def test_a_bad_space_is_one_line_and_changes_nothing(shell, folder, space, message):
    shell.user_ns["SPACE"] = space
    refused(shell, folder, "%hpo_run quadratic --n-trials 5 --space SPACE", message)


# -- storage URLs ----------------------------------------------------------------------------
STORAGE_CASES = [
    ("   ", "empty", "blank"),
    (
        "foo://host/db",
        "cannot open storage foo://host/db: Can't load plugin: sqlalchemy.dialects:foo",
        "unknown scheme",
    ),
    (
        "postgresql+psycopg3://127.0.0.1/test",
        "Can't load plugin: sqlalchemy.dialects:postgresql.psycopg3",
        "driver typo",
    ),
    ("postgres://127.0.0.1/test", "Can't load plugin: sqlalchemy.dialects:postgres", "scheme typo"),
    (UNREACHABLE_PG, "Connection refused", "postgresql unreachable"),
    (UNREACHABLE_MYSQL, "Can't connect to MySQL server on '127.0.0.1'", "mysql unreachable"),
    (
        "postgresql+psycopg://127.0.0.1:5432/no_such_db",
        'database "no_such_db" does not exist',
        "postgresql unknown database",
    ),
    (
        "mysql+pymysql://root@127.0.0.1:3306/no_such_db",
        "Unknown database 'no_such_db'",
        "mysql unknown database",
    ),
    (
        "sqlite:///nodir/x.db",
        "cannot open storage sqlite:///nodir/x.db: folder",
        "sqlite in a missing folder",
    ),
    ("nodir/x.db", "folder", "bare path in a missing folder"),
    ("notes.txt", "file is not a database", "a text file"),
    ("sqlite:///.", "database", "a folder"),
]


@pytest.mark.parametrize(
    ("url", "message"),
    [pytest.param(*case[:2], id=case[2], marks=case[3:]) for case in STORAGE_CASES],
)
@pytest.mark.parametrize("magic", ["%hpo_list", RUN])
def test_a_bad_storage_is_one_line_and_creates_nothing(shell, folder, magic, url, message):
    refused(shell, folder, f"{magic} --storage {url!r}", message)


@pytest.mark.parametrize("magic", ["%hpo_list", "%hpo_status quadratic", RUN])
def test_another_programs_database_gets_no_tables(shell, folder, magic):
    """A SQLite file with other tables and none of Optuna's is refused (Optuna would add its
    tables to it), by the commands that only read and by those that write."""
    other = sqlite3.connect(folder / "app.db")
    other.execute("CREATE TABLE notes (text TEXT)")
    other.execute("INSERT INTO notes VALUES ('keep me')")
    other.commit()
    other.close()
    try:
        refused(shell, folder, f"{magic} --storage app.db", "app.db holds other tables (notes)")
    finally:
        (folder / "app.db").unlink()


# -- archives --------------------------------------------------------------------------------
def _members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def _zip(path: Path, members: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> None:
    with zipfile.ZipFile(path, "w", method) as zf:
        for name, data in members.items():
            zf.writestr(name, data)


def _changed(change: Callable[[dict[str, bytes]], None]) -> Callable[[Path, Path], None]:
    """A builder: ``good.zip`` with its members changed in place by ``change``."""

    def build(good: Path, out: Path) -> None:
        members = _members(good)
        change(members)
        _zip(out, members)

    return build


def _header(**changes: Any) -> Callable[[dict[str, bytes]], None]:
    def change(members: dict[str, bytes]) -> None:
        members["archive.json"] = json.dumps(
            {**json.loads(members["archive.json"]), **changes}
        ).encode()

    return change


def _record(**changes: Any) -> Callable[[dict[str, bytes]], None]:
    """Change the first trial of ``trials.jsonl``."""

    def change(members: dict[str, bytes]) -> None:
        first, *rest = members["trials.jsonl"].decode().splitlines()
        record = {**json.loads(first), **changes}
        members["trials.jsonl"] = "\n".join([json.dumps(record), *rest]).encode() + b"\n"

    return change


def _categorical_index(members: dict[str, bytes]) -> None:
    """A categorical parameter whose stored index is past its choices."""
    choice = json.dumps({"name": "CategoricalDistribution", "attributes": {"choices": ["a"]}})
    header = json.loads(members["archive.json"])
    _header(distributions=[*header["distributions"], choice])(members)
    params = json.loads(members["trials.jsonl"].splitlines()[0])["params"]
    _record(params={**params, "c": [7, len(header["distributions"])]})(members)


def _set(name: str, data: bytes | None) -> Callable[[dict[str, bytes]], None]:
    def change(members: dict[str, bytes]) -> None:
        if data is None:
            del members[name]
        else:
            members[name] = data

    return change


def _pickled_npy() -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.array([1, "a"], dtype=object), allow_pickle=True)
    return buffer.getvalue()


def _text(good: Path, out: Path) -> None:
    out.write_text("hello\n")


def _empty(good: Path, out: Path) -> None:
    out.write_bytes(b"")


def _truncated(good: Path, out: Path) -> None:
    out.write_bytes(good.read_bytes()[: good.stat().st_size // 2])


def _zip_slip(good: Path, out: Path) -> None:
    _zip(out, {**_members(good), "../../escaped.txt": b"x"})


def _twice(good: Path, out: Path) -> None:
    members = _members(good)
    with warnings.catch_warnings(), zipfile.ZipFile(out, "w") as zf:
        warnings.simplefilter("ignore")  # zipfile warns of the duplicate name
        for name, data in members.items():
            zf.writestr(name, data)
        zf.writestr("trials.jsonl", members["trials.jsonl"])


def _bzip2_bomb(good: Path, out: Path) -> None:
    members = _members(good)
    members["trials.jsonl"] += b" " * (64 * 2**20)
    _zip(out, members, zipfile.ZIP_BZIP2)


def _oversized(good: Path, out: Path) -> None:
    """``trials.jsonl``, stored, declares 1.5 GiB (compressed and not) in the central
    directory: within what deflate can do, over the limit."""
    _zip(out, _members(good), zipfile.ZIP_STORED)
    data = bytearray(out.read_bytes())
    with zipfile.ZipFile(out) as zf:
        at = zf.start_dir
    while data[at + 46 : at + 58] != b"trials.jsonl":
        lengths = (int.from_bytes(data[at + k : at + k + 2], "little") for k in (28, 30, 32))
        at += 46 + sum(lengths)
    size = (3 * 2**29).to_bytes(4, "little")
    data[at + 20 : at + 28] = size + size
    out.write_bytes(bytes(data))


ARCHIVE_CASES = [
    (_text, "is not an hpo_nb archive", "not a zip"),
    (_empty, "is not an hpo_nb archive", "an empty file"),
    (_truncated, "is not an hpo_nb archive", "truncated"),
    (_changed(_set("archive.json", None)), "is not an hpo_nb archive", "no header"),
    (
        _changed(_set("archive.json", b"[" * 100_000)),
        "is not an hpo_nb archive",
        "header nested too deep",
    ),
    (_changed(_header(format="something else")), "is not an hpo_nb archive", "another format"),
    (
        _changed(_header(version=2)),
        "is archive version 2, newer than this hpo_nb reads",
        "newer version",
    ),
    (_changed(_header(version="1")), "version '1' is not a version number", "version a string"),
    (_changed(_header(n_trials=99)), "3 trials where 99 were written", "trial count wrong"),
    (
        _changed(_header(n_intermediate_values=-1)),
        "n_intermediate_values -1 is not a count",
        "negative count",
    ),
    (
        _changed(
            _header(
                study={
                    "name": "s",
                    "directions": ["SIDEWAYS"],
                    "user_attrs": {},
                    "system_attrs": {},
                }
            )
        ),
        "damaged hpo_nb archive: 'SIDEWAYS'",
        "unknown direction",
    ),
    (
        _changed(
            _header(
                study={
                    "name": "s",
                    "directions": ["MINIMIZE"],
                    "user_attrs": [1],
                    "system_attrs": {},
                }
            )
        ),
        "the study's user_attrs is not a mapping",
        "study attributes a list",
    ),
    (_changed(_set("trials.jsonl", None)), "there is no member named 'trials.jsonl'", "no trials"),
    (
        _changed(_set("trials.jsonl", b"[" * 100_000 + b"\n")),
        "damaged hpo_nb archive",
        "trial nested too deep",
    ),
    (_changed(_record(params=[1, 2])), "params of trial 0 is not a mapping", "params a list"),
    (
        _changed(_record(params={"x": [0.5, 7]})),
        "parameter 'x' of trial 0 is malformed",
        "distribution index out of range",
    ),
    (
        _changed(_categorical_index),
        "parameter 'c' of trial 0 is malformed",
        "categorical index past its choices",
    ),
    (
        _changed(_record(values=["a"])),
        "trial 0 has a value that is not a number",
        "value a string",
    ),
    (
        _changed(_record(values=[1.0, 2.0])),
        "trial 0 does not have 1 values",
        "two values for one objective",
    ),
    (_changed(_record(state="DONE")), "damaged hpo_nb archive: 'DONE'", "unknown state"),
    (
        _changed(_record(datetime_start="yesterday")),
        "Invalid isoformat string: 'yesterday'",
        "datetime not ISO",
    ),
    (
        _changed(_record(user_attrs="note")),
        "user_attrs of trial 0 is not a mapping",
        "trial attributes a string",
    ),
    (
        _changed(_set("intermediate_step.npy", _pickled_npy())),
        "intermediate_step.npy holds object, not int64",
        "pickled npy",
    ),
    (_changed(_set("intermediate_value.npy", b"")), "damaged hpo_nb archive", "empty npy"),
    (_zip_slip, "unexpected member '../../escaped.txt'", "zip-slip member name"),
    (_twice, "member 'trials.jsonl' is in it twice", "a member twice"),
    (_bzip2_bomb, "more than deflate can (a ZIP bomb?)", "bzip2 bomb"),
    (_oversized, "over the 1.0 GiB an archive may hold: if you trust it", "oversized"),
]


@pytest.mark.parametrize(
    ("build", "message"),
    [pytest.param(*case[:2], id=case[2], marks=case[3:]) for case in ARCHIVE_CASES],
)
def test_a_bad_archive_is_one_line_and_imports_nothing(shell, folder, build, message):
    path = folder / "bad.zip"
    build(folder / "good.zip", path)
    try:
        refused(shell, folder, "%hpo_import bad.zip --study copy", message)
    finally:
        path.unlink()


# -- the panel's commands --------------------------------------------------------------------
@pytest.fixture(scope="module")
def console(folder, shell) -> Console:
    """The panel of objective ``quadratic`` and its study in ``hpo.db``, loaded."""
    objective = shell.magics_manager.registry["HpoMagics"].objectives["quadratic"]
    panel = Console(
        study="quadratic", objective=objective, options=hpo_nb.RunOptions(storage="hpo.db")
    )
    assert panel.loaded.wait(60)
    return panel


@pytest.fixture(scope="module")
def study_panel(folder) -> Console:
    """The panel of study ``plain`` alone (no objective in this kernel)."""
    panel = Console(study="plain", options=hpo_nb.RunOptions(storage="hpo.db", gpus="0"))
    assert panel.loaded.wait(60)
    return panel


def _draft(params: Any) -> dict[str, Any]:
    return {"cmd": "draft", "space": {"params": params}}


def _apply(params: Any) -> dict[str, Any]:
    return {"cmd": "apply", "space": {"params": params}}


def _config(change: Any) -> dict[str, Any]:
    return {"cmd": "config", "config": change}


PANEL_CASES = [
    (
        _config({"n_trials": 0}),
        "config_error",
        "n_trials must be an integer >= 1, got 0",
        "config: n_trials 0",
    ),
    (
        _config({"n_trials": "many"}),
        "config_error",
        "n_trials must be an integer >= 1, got 'many'",
        "config: n_trials text",
    ),
    (_config({"n_trials": None}), "config_error", "n_trials is missing", "config: n_trials none"),
    (
        _config({"concurrency": -1}),
        "config_error",
        "concurrency must be an integer >= 1, got -1",
        "config: concurrency negative",
    ),
    (
        _config({"trial_timeout": -5}),
        "config_error",
        "trial_timeout must be a positive number of seconds",
        "config: trial_timeout negative",
    ),
    (
        _config({"timeout": float("nan")}),
        "config_error",
        "timeout must be a positive number of seconds, got nan",
        "config: timeout nan",
    ),
    (
        _config({"min_delta": float("inf")}),
        "config_error",
        "min_delta must be a finite number >= 0",
        "config: min_delta inf",
    ),
    (
        _config({"seed": True}),
        "config_error",
        "seed must be an integer, got True",
        "config: seed a bool",
    ),
    (
        _config({"retries": 1.5}),
        "config_error",
        "retries must be an integer >= 0, got 1.5",
        "config: retries float",
    ),
    (
        _config({"sampler": "bayes"}),
        "config_error",
        "unknown sampler 'bayes'",
        "config: unknown sampler",
    ),
    (_config({"pruner": 3}), "config_error", "unknown pruner 3", "config: pruner a number"),
    (
        _config({"sampler": "tpe", "sampler_options": {"nope": 1}}),
        "config_error",
        "unknown option 'nope' for sampler tpe",
        "config: sampler option unknown",
    ),
    (
        _config({"sampler": "tpe", "sampler_options": {"n_startup_trials": "x"}}),
        "config_error",
        "n_startup_trials must be of type int",
        "config: sampler option type",
    ),
    (
        _config({"sampler_options": ["oops"]}),
        "config_error",
        "option 'oops' is not key=value",
        "config: sampler options a list",
    ),
    (
        _config({"pruner_options": [None]}),
        "config_error",
        "is not key=value",
        "config: pruner options a list of None",
    ),
    (
        _config({"workers": 3}),
        "config_error",
        "'workers' is not a run setting the panel edits",
        "config: not a panel setting",
    ),
    (
        _config({"storage": "other.db"}),
        "config_error",
        "'storage' is not a run setting the panel edits",
        "config: storage",
    ),
    (
        _config(5),
        "config_error",
        "config must be a mapping of run settings to values",
        "config: not a mapping",
    ),
    (
        _draft({"x": {"type": "float", "low": 3, "high": -3}}),
        "draft_error",
        "'x': low 3 is greater than high -3",
        "draft: low > high",
    ),
    (
        _draft({"x": {"type": "float", "low": 0, "high": 10**400}}),
        "draft_error",
        "high",
        "draft: high beyond a float",
    ),
    (
        _draft([1, 2]),
        "draft_error",
        "the space must be a mapping of parameter names to specs",
        "draft: a list",
    ),
    (
        {"cmd": "draft", "space": [1, 2]},
        "draft_error",
        "the space must be a mapping of parameter names to specs",
        "draft: space a list",
    ),
    (
        {"cmd": "draft"},
        "draft_error",
        "the space must be a mapping of parameter names to specs",
        "draft: no space",
    ),
    (
        _draft({"zz": [1, 2]}),
        "draft_error",
        "parameter 'zz' is not in the objective's code",
        "draft: unknown parameter",
    ),
    (
        _apply({"x": {"type": "float", "low": 0, "high": 1, "step": 0.3}}),
        "status",
        "step 0.3 does not divide",
        "apply: step does not divide",
    ),
    (
        _apply({"x": {"type": "float", "low": 0.5, "high": 0.1}}),
        "status",
        "low 0.5 is greater than high 0.1",
        "apply: low > high",
    ),
    (
        _apply({"zz": {"type": "int", "low": 0, "high": 3}}),
        "status",
        "parameter 'zz' is not in the objective's code",
        "apply: unknown parameter",
    ),
    ({"cmd": "nope"}, "status", "unknown command 'nope'", "unknown command"),
    ({"cmd": None}, "status", "unknown command None", "command none"),
]


@pytest.mark.parametrize(
    ("message", "trait", "expected"),
    [pytest.param(*case[:3], id=case[3], marks=case[4:]) for case in PANEL_CASES],
)
def test_a_bad_panel_command_is_one_line_and_changes_nothing(
    console, folder, message, trait, expected
):
    for name in ("config_error", "draft_error", "status"):
        setattr(console.panel, name, "")
    config, space, before = dict(console.panel.config), dict(console.panel.space), digest(folder)
    console.command(message)
    shown = getattr(console.panel, trait)
    assert "\n" not in shown and "\r" not in shown, shown
    assert expected in shown, shown
    assert console.panel.config == config
    assert console.panel.space == space
    assert console.run is None
    assert digest(folder) == before


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        pytest.param(
            {"cmd": "start"},
            "define the objective (%%hpo_objective) to run study 'plain'",
            id="start: no objective",
        ),
        pytest.param(
            {"cmd": "resume"},
            "define the objective (%%hpo_objective) to run study 'plain'",
            id="resume: no objective",
        ),
    ],
)
def test_a_panel_without_its_objective_starts_nothing(study_panel, folder, message, expected):
    before = digest(folder)
    study_panel.command(message)
    assert study_panel.panel.status == expected
    assert study_panel.run is None
    assert digest(folder) == before


def test_a_panel_start_the_machine_cannot_run_changes_nothing(folder, shell):
    """Start with --gpus on a machine without GPUs: refused before the study is touched."""
    objective = shell.magics_manager.registry["HpoMagics"].objectives["quadratic"]
    options = hpo_nb.RunOptions(storage="hpo.db", gpus="0", study="fresh")
    panel = Console(study="fresh", objective=objective, options=options)
    assert panel.loaded.wait(60)
    before = digest(folder)
    panel.command({"cmd": "start"})
    assert "--gpus 0 picks the GPUs of a cuda cluster" in panel.panel.status
    assert "\n" not in panel.panel.status
    assert panel.run is None
    assert digest(folder) == before


# -- what objectives return ------------------------------------------------------------------
class _Raise:
    """An objective outcome that raises ``error`` (with ``note`` added, when given)."""

    def __init__(self, error: BaseException, note: str | None = None) -> None:
        self.error, self.note = error, note

    def __call__(self) -> Any:
        if self.note is not None:
            self.error.add_note(self.note)
        raise self.error


SINGLE: dict[str, tuple[Callable[[], Any], str, str | None]] = {
    # case: (what the objective does, the trial's state, what its fail reason says)
    "a number": (lambda: 0.5, "COMPLETE", None),
    "None": (lambda: None, "FAIL", "objective returned None"),
    "a string": (lambda: "0.5", "FAIL", "objective returned a str ('0.5'), not a number"),
    "a string with a newline": (lambda: "a\nb", "FAIL", "objective returned a str"),
    "bytes": (lambda: b"1", "FAIL", "objective returned a bytes"),
    "NaN": (lambda: float("nan"), "FAIL", "objective returned NaN"),
    "numpy NaN": (lambda: np.float64("nan"), "FAIL", "objective returned NaN"),
    "inf": (lambda: float("inf"), "COMPLETE", None),
    "-inf": (lambda: -float("inf"), "COMPLETE", None),
    "numpy scalar": (lambda: np.float32(0.25), "COMPLETE", None),
    "two values": (lambda: [1.0, 2.0], "FAIL", "returned 2 value(s) but the study has 1"),
    "an empty list": (lambda: [], "FAIL", "returned 0 value(s) but the study has 1"),
    "a dict": (
        lambda: {"loss": 1.0},
        "FAIL",
        "objective returned dict {'loss': 1.0}, not a number",
    ),
    "a complex number": (lambda: 1j, "FAIL", "objective returned complex 1j, not a number"),
    "an object": (lambda: object(), "FAIL", "objective returned object <object object at"),
    "a 1x2x2 array": (lambda: np.zeros((1, 2, 2)), "FAIL", "objective returned ndarray"),
    "raises": (_Raise(ValueError("boom")), "FAIL", "ValueError: boom"),
    "raises without a message": (_Raise(RuntimeError()), "FAIL", "RuntimeError"),
    "raises two lines": (_Raise(ValueError("first\nsecond")), "FAIL", "ValueError: first"),
    "raises with a note": (_Raise(ValueError("boom"), "see the docs"), "FAIL", "ValueError: boom"),
}
DOUBLE: dict[str, tuple[Callable[[], Any], str, str | None]] = {
    "two numbers": (lambda: (1.0, 2.0), "COMPLETE", None),
    "one value": (lambda: 1.0, "FAIL", "returned 1 value(s) but the study has 2"),
    "three values": (lambda: (1.0, 2.0, 3.0), "FAIL", "returned 3 value(s) but the study has 2"),
    "None among them": (
        lambda: (1.0, None),
        "FAIL",
        "objective returned NoneType None, not a number",
    ),
    "NaN among them": (lambda: (1.0, float("nan")), "FAIL", "objective returned NaN"),
    "a string of two letters": (lambda: "ab", "FAIL", "objective returned a str ('ab')"),
}


def single(trial: optuna.Trial) -> Any:
    return SINGLE[trial.suggest_categorical("case", list(SINGLE))][0]()


def double(trial: optuna.Trial) -> Any:
    return DOUBLE[trial.suggest_categorical("case", list(DOUBLE))][0]()


@pytest.fixture(scope="module")
def returned(tmp_path_factory) -> dict[str, tuple[hpo_nb.Run, dict[str, optuna.trial.FrozenTrial]]]:
    """Both studies run once, each case enqueued; each case's first trial."""
    db = f"sqlite:///{tmp_path_factory.mktemp('returns') / 'hpo.db'}"
    out = {}
    for objective, cases, directions in (
        (single, SINGLE, None),
        (double, DOUBLE, ["minimize", "maximize"]),
    ):
        run = hpo_nb.run(
            objective,
            n_trials=len(cases),
            storage=db,
            enqueue=[{"case": case} for case in cases],
            stop_after_failures=0,
            directions=directions,
            seed=0,
            wait=True,
        )
        trials = optuna.load_study(study_name=objective.__name__, storage=db).trials
        first: dict[str, optuna.trial.FrozenTrial] = {}
        for t in trials:
            first.setdefault(t.params["case"], t)
        out[objective.__name__] = (run, first)
    return out


def _return_cases() -> Iterator[Any]:
    for study, cases in (("single", SINGLE), ("double", DOUBLE)):
        for case, (_, state, reason) in cases.items():
            yield pytest.param(study, case, state, reason, id=f"{study}: {case}")


@pytest.mark.parametrize(("study", "case", "state", "reason"), list(_return_cases()))
def test_a_bad_return_fails_its_trial_in_one_line(returned, study, case, state, reason):
    run, first = returned[study]
    assert run.state == RunState.COMPLETED, run.reason  # the study went on
    assert not [t for t in first.values() if not t.state.is_finished()]
    trial = first[case]
    assert trial.state.name == state
    shown = trial.system_attrs.get(FAIL_REASON_KEY)
    if reason is None:
        assert shown is None
        return
    assert "\n" not in shown and "\r" not in shown, shown
    assert reason in shown, shown

"""The panel's progress (what it receives, how often, how it reads as text), its front end (the
bundle is built from widgets/src/) and the contract between the two (widgets/PROTOCOL.md)."""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import anywidget
import optuna
import traitlets

import hpo_nb
from hpo_nb.engine.progress import Progress, RunState
from hpo_nb.engine.rows import trial_row
from hpo_nb.frontends import panel_protocol
from hpo_nb.frontends.console import Console
from hpo_nb.frontends.panel import Panel

WIDGETS = Path(__file__).resolve().parents[1] / "widgets"


def instant(trial):
    return trial.suggest_float("x", -1, 1) ** 2


def test_the_widget_shows_the_final_state(db):
    run = hpo_nb.run(instant, n_trials=40, storage=db, wait=True)
    widget = hpo_nb.panel(run).panel
    p = widget.progress
    assert p["state"] == "completed" and p["finished"] == 40 and p["target"] == 40
    assert p["complete"] == 40 and p["running"] == 0 and p["ended_at"] is not None
    assert p["best_value"] == run.best_value and p["best_params"] == run.best_params
    assert repr(widget) == run.progress.summary() and "\n" not in repr(widget)
    json.dumps(p, allow_nan=False)


def test_updates_are_throttled(db):
    updates = []
    run = hpo_nb.run(instant, n_trials=300, storage=db)
    run._controller.subscribe(lambda p: updates.append((time.monotonic(), p.state, p.finished)))
    run.wait(120)
    assert run.state == RunState.COMPLETED and updates[-1][1:] == (RunState.COMPLETED, 300)
    # Changes of state are sent at once; between them, updates come at most every interval.
    steady = [
        b[0] - a[0] for a, b in itertools.pairwise(updates) if a[1] == b[1] == RunState.RUNNING
    ]
    assert steady, "the run was too short to see regular updates"
    assert min(steady) >= hpo_nb.settings.widget_interval * 0.99, steady


def test_snapshot_json_is_strict_json():
    progress = Progress(study="s", target=3, best_value=math.inf, best_params={"x": math.nan})
    data = progress.to_json()
    json.dumps(data, allow_nan=False)
    assert data["best_value"] is None and data["best_params"] == {"x": "nan"}


def test_summary_is_stable_and_short():
    p = Progress(
        study="quickstart",
        target=30,
        complete=25,
        pruned=4,
        failed=1,
        best_value=0.97123456,
        state=RunState.COMPLETED,
    )
    assert p.summary() == (
        "quickstart: 30/30 finished (25 complete, 4 pruned, 1 failed, 0 running), "
        "best 0.971235 [completed]"
    )
    assert len(p.summary()) <= 110


def test_a_failed_runs_summary_says_why():
    reason = "cannot connect to the dask scheduler at tcp://10.0.0.9:8786: timed out"
    p = Progress(study="s", target=3, state=RunState.FAILED, reason=reason)
    assert p.summary().endswith(f"[failed: {reason}]") and "\n" not in p.summary()
    stopped = Progress(study="s", target=3, state=RunState.STOPPED, reason="by the user")
    assert stopped.summary().endswith("[stopped]")


def test_eta_follows_this_runs_pace():
    start = time.time() - 10
    p = Progress(
        study="s",
        target=30,
        finished_before=10,
        complete=20,
        started_at=start,
        state=RunState.RUNNING,
    )
    assert p.eta is not None and math.isclose(p.eta, 10.0, rel_tol=0.05)
    assert Progress(study="s", target=5, state=RunState.RUNNING).eta is None


def test_widget_ships_its_front_end():
    widget = Panel(lambda command: None)
    assert re.search(r"export \{\s*\w+ as default\s*\}", str(widget._esm))  # {render}
    assert "hpo-panel" in str(widget._esm) and ".hpo-panel" in str(widget._css)


# ------------------------------------------------------------------------ the bundle
@contextlib.contextmanager
def _npm_lock() -> Iterator[None]:
    """One npm at a time in widgets/ (npm ci empties node_modules while it installs)."""
    import fcntl

    with open(Path(tempfile.gettempdir()) / "hpo_nb-widgets-npm.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _esbuild_installed() -> bool:
    """Whether widgets/node_modules holds the esbuild that package-lock.json pins."""
    lock = json.loads((WIDGETS / "package-lock.json").read_text())
    pinned = lock["packages"]["node_modules/esbuild"]["version"]
    installed = WIDGETS / "node_modules" / "esbuild" / "package.json"
    return installed.is_file() and json.loads(installed.read_text())["version"] == pinned


def _npm(*args: str) -> None:
    npm = shutil.which("npm")
    assert npm, "the panel's bundle test needs node and npm (e.g. apt-get install nodejs npm)"
    done = subprocess.run([npm, *args], cwd=WIDGETS, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"npm {' '.join(args)} failed:\n{done.stdout}{done.stderr}"


def test_the_committed_bundle_is_built_from_the_sources(tmp_path):
    """widgets/panel.js is exactly what `npm run build` makes of widgets/src/ with the pinned
    esbuild: nobody edits the bundle by hand or forgets to rebuild it."""
    built = tmp_path / "panel.js"
    with _npm_lock():
        if not _esbuild_installed():
            _npm("ci", "--no-audit", "--no-fund")
        _npm("run", "--silent", "build", "--", f"--outfile={built}")
    assert built.read_bytes() == (WIDGETS / "panel.js").read_bytes(), (
        "widgets/panel.js is not the bundle of widgets/src/: run `npm ci && npm run build` in "
        "widgets/ and commit panel.js with the sources"
    )


# ------------------------------------------------------------------------ the contract
def _js_object(name: str) -> dict[str, str]:
    """``export const NAME = Object.freeze({key: "value", ...})`` of widgets/src/protocol.js."""
    source = (WIDGETS / "src" / "protocol.js").read_text()
    block = re.search(rf"export const {name} = Object\.freeze\(\{{(.*?)\}}\);", source, re.S)
    assert block, f"protocol.js has no {name}"
    return dict(re.findall(r'^\s*(\w+):\s*"(\w+)",?\s*$', block.group(1), re.M))


def test_protocol_js_names_exactly_the_panels_synced_traits():
    kinds = {traitlets.Dict: "dict", traitlets.List: "list", traitlets.Unicode: "text"}
    inherited = anywidget.AnyWidget.class_traits(sync=True)
    synced = {
        name: kinds[type(trait)]
        for name, trait in Panel.class_traits(sync=True).items()
        if name not in inherited
    }
    assert _js_object("TRAITS") == synced
    assert set(panel_protocol.TRAITS) == set(synced)


def test_protocol_js_names_exactly_the_consoles_commands():
    handlers = {name.removeprefix("_cmd_") for name in dir(Console) if name.startswith("_cmd_")}
    sent = set(_js_object("COMMANDS").values())
    assert sent == handlers == set(panel_protocol.COMMANDS)
    # Every other module sends commands through these names, never by a literal.
    for module in (WIDGETS / "src").glob("*.js"):
        if module.name != "protocol.js":
            assert not re.search(r"cmd:\s*[\"']", module.read_text()), module.name


def test_trials_messages_and_rows_have_the_protocols_fields():
    study = optuna.create_study()
    study.optimize(instant, n_trials=2)
    row = trial_row(study.trials[0])
    assert set(row) == set(panel_protocol.TrialRow.__annotations__)
    sent = []
    panel = Panel(lambda command: None)
    panel.send = lambda content, buffers=None: sent.append(content)
    panel.send_rows([row], total=1, reset=True)
    assert set(sent[0]) == set(panel_protocol.TrialsMessage.__annotations__)
    assert sent[0]["kind"] == _js_object("MESSAGES")["TRIALS"]


def test_the_progress_trait_has_the_protocols_fields():
    sent = set(Progress(study="s", target=1).to_json()) | {"per_minute"}
    assert sent == set(panel_protocol.Progress.__annotations__)


def test_the_run_settings_the_panel_shows_are_config_fields(db):
    console = hpo_nb.panel(instant, storage=db, n_trials=5)
    fields = console.panel.options["fields"]
    assert [f["name"] for f in fields][:1] == ["n_trials"]
    assert set(console.panel.config) == set(panel_protocol.Config.__annotations__)
    for field in fields:
        assert set(field) == set(panel_protocol.ConfigField.__annotations__), field
        assert field["kind"] in ("int", "float", "text") and field["name"] in console.panel.config
    console.command({"cmd": "config", "config": {"trial_timeout": 30.0, "patience": None}})
    assert console.panel.config_error == ""
    assert console.panel.config["trial_timeout"] == 30.0

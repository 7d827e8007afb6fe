"""The control panel in a real browser: JupyterLab 4 and Notebook 7, Debian chromium, Playwright.

Each test opens a fresh copy of ``panel_live.ipynb`` (objective ``f`` over x float [-5, 5],
y int [0, 10], opt [a, b]; ~0.4 s a trial; ``%hpo_panel f --study panel_live --n-trials 400
--workers 2 --storage sqlite:///hpo.db``), runs all cells and drives the panel only through the
DOM test hooks of ``widgets/panel.js`` (root ``.hpo-panel`` with data-state/data-finished/
data-study/data-rows, ``button[data-cmd]``, ``button[data-tab]``, ``svg[data-chart][data-points]``,
the space editor ``.hpo-param[data-param] [data-field]`` and ``.hpo-space-error``). What the study
did is read back from its SQLite file in the test's folder. Screenshots go to
``tests/browser/artifacts/``.
"""

from __future__ import annotations

import time
from pathlib import Path

import optuna
import pytest
from playwright.sync_api import Page, expect

import hpo_nb

from .conftest import TOKEN, PageGuard, Server

pytestmark = [
    pytest.mark.browser,
    # pytest-base-url (pulled in by pytest-playwright) defines base_url the pytest-8 way.
    pytest.mark.filterwarnings(
        "ignore:Session-scoped fixtures defined as instance methods:pytest.PytestRemovedIn10Warning"
    ),
]

NOTEBOOK = "panel_live.ipynb"
STUDY = "panel_live"
PANEL = ".hpo-panel"
ENDED = ("stopped", "completed", "converged", "failed")
CELL = ".jp-Notebook .jp-Cell"
# Trials that may still use the old space once the run took an edit: those already handed to
# the two workers (running, or sent with a task that has not started yet), with a margin.
IN_FLIGHT = 4

KERNEL_READY = """() => {
  const kernel = window.jupyterapp?.shell?.currentWidget?.sessionContext?.session?.kernel;
  return !!kernel && kernel.connectionStatus === "connected" && kernel.status === "idle";
}"""


# ------------------------------------------------------------------------------ helpers
def open_and_run_all(page: Page, server: Server, path: str) -> None:
    """Open ``path``, wait until its kernel is connected and idle, then run every cell."""
    if server.app == "lab":  # ?reset: ignore tabs an earlier test left in the workspace
        page.goto(f"{server.url}/lab/tree/{path}?reset&token={TOKEN}")
    else:
        page.goto(f"{server.url}/notebooks/{path}?token={TOKEN}")
    page.wait_for_selector(CELL, timeout=60_000)
    # Not the execution indicator: it says idle before the kernel is connected.
    page.wait_for_function(KERNEL_READY, timeout=90_000)
    # Return nothing: evaluate() has no timeout and would wait for every cell to finish.
    page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")


def number(page: Page, selector: str, attribute: str) -> int:
    value = page.locator(selector).first.get_attribute(attribute)
    assert value is not None, f"{selector} has no {attribute}"
    return int(float(value))


def finished(page: Page) -> int:
    return number(page, PANEL, "data-finished")


def wait_finished(page: Page, at_least: int, timeout: float = 60_000) -> int:
    page.wait_for_function(
        "n => Number(document.querySelector('.hpo-panel')?.dataset.finished) >= n",
        arg=at_least,
        timeout=timeout,
    )
    return finished(page)


def wait_state(page: Page, states: tuple[str, ...], timeout: float = 60_000) -> str:
    """The panel's state once it is one of ``states``, read in the same check (a second read
    could meet a view of the panel that is being drawn again: seen once in CI)."""
    handle = page.wait_for_function(
        """states => {
            const state = document.querySelector('.hpo-panel')?.dataset.state;
            return states.includes(state) ? state : null;
        }""",
        arg=list(states),
        timeout=timeout,
    )
    state = handle.json_value()
    assert isinstance(state, str)
    return state


def show_panel_and_start(page: Page, server: Server, path: str) -> None:
    """Run the notebook, check the panel is idle and ready, click Start, wait for a trial."""
    open_and_run_all(page, server, path)
    panel = page.locator(PANEL)
    expect(panel).to_be_visible(timeout=60_000)
    expect(panel).to_have_attribute("data-study", STUDY)
    expect(panel).to_have_attribute("data-state", "idle")
    start = panel.locator("button[data-cmd=start]")
    expect(start).to_be_enabled(timeout=30_000)
    assert finished(page) == 0, "nothing should run before Start is clicked"
    start.click()
    wait_state(page, ("starting", "running"), timeout=30_000)
    wait_finished(page, 1, timeout=90_000)


def open_tab(page: Page, view: str) -> None:
    page.locator(f"{PANEL} button[data-tab={view}]").click()


def chart_points(page: Page, view: str) -> int:
    return number(page, f"{PANEL} svg[data-chart={view}]", "data-points")


def wait_chart(page: Page, view: str, at_least: int, timeout: float = 30_000) -> int:
    page.wait_for_function(
        """([view, n]) => {
          const svg = document.querySelector(`.hpo-panel svg[data-chart="${view}"]`);
          return !!svg && Number(svg.dataset.points) >= n;
        }""",
        arg=[view, at_least],
        timeout=timeout,
    )
    return chart_points(page, view)


def set_theme(page: Page, theme: str) -> None:
    page.evaluate(
        "theme => { window.jupyterapp.commands.execute('apputils:change-theme', {theme}); }",
        theme,
    )
    light = "true" if theme == "JupyterLab Light" else "false"
    page.wait_for_function(
        "light => document.body.dataset.jpThemeLight === light", arg=light, timeout=20_000
    )
    page.wait_for_timeout(300)  # let the CSS variables settle before the screenshot


def shoot(page: Page, artifacts: Path, name: str) -> None:
    page.locator(PANEL).scroll_into_view_if_needed()
    page.locator(PANEL).screenshot(path=str(artifacts / f"{name}.png"))


def storage(server: Server, folder: str) -> str:
    return f"sqlite:///{server.root / folder / 'hpo.db'}"


def trials(url: str, study: str = STUDY) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=study, storage=url).get_trials(deepcopy=False)


def edit(page: Page, param: str, field: str, value: str) -> None:
    box = page.locator(f'{PANEL} .hpo-param[data-param="{param}"] [data-field="{field}"]')
    box.fill(value)
    box.dispatch_event("change")


# ------------------------------------------------------------------------------ tests
def test_panel_runs_and_charts_grow(
    page: Page, lab_server: Server, guard: PageGuard, folder: str, artifacts: Path
) -> None:
    """Start from the panel: the finished count and the convergence chart grow; screenshots of
    the main tabs in the light and the dark theme."""
    path = lab_server.notebook(NOTEBOOK, folder)
    show_panel_and_start(page, lab_server, path)
    open_tab(page, "convergence")
    first = wait_chart(page, "convergence", 1)
    count = finished(page)
    wait_finished(page, count + 3)
    wait_chart(page, "convergence", first + 3)
    assert number(page, PANEL, "data-rows") >= first + 3

    open_tab(page, "top")
    expect(page.locator(f"{PANEL} table.hpo-top tbody tr").first).to_be_visible()
    open_tab(page, "setup")
    expect(page.locator(f"{PANEL} .hpo-param[data-param]")).to_have_count(3)  # x, y, opt

    for theme, tag in (("JupyterLab Light", "light"), ("JupyterLab Dark", "dark")):
        set_theme(page, theme)
        for view in ("convergence", "top", "setup", "intermediate", "parallel"):
            open_tab(page, view)
            if view in ("convergence", "intermediate", "parallel"):
                wait_chart(page, view, 1)
            shoot(page, artifacts, f"lab_{view}_{tag}")
    set_theme(page, "JupyterLab Light")
    guard.check()


def test_stop_ends_the_study(page: Page, lab_server: Server, guard: PageGuard, folder: str) -> None:
    """Stop: the panel reaches an end state, the count stops, the storage says stopped."""
    path = lab_server.notebook(NOTEBOOK, folder)
    show_panel_and_start(page, lab_server, path)
    wait_finished(page, 3)
    stop = page.locator(f"{PANEL} button[data-cmd=stop]")
    expect(stop).to_be_enabled()
    stop.click()
    state = wait_state(page, ENDED, timeout=60_000)
    assert state == "stopped"
    expect(page.locator(f"{PANEL} button[data-cmd=stop]")).to_be_disabled()
    expect(page.locator(f"{PANEL} button[data-cmd=resume]")).to_be_enabled()

    after_stop = finished(page)
    page.wait_for_timeout(2500)
    assert finished(page) == after_stop, "trials kept finishing after the study stopped"
    assert page.locator(PANEL).get_attribute("data-state") == "stopped"

    url = storage(lab_server, folder)
    info = hpo_nb.status(STUDY, storage=url)
    assert info.state == "stopped", info
    assert info.running == 0, info
    assert len([t for t in trials(url) if t.state.is_finished()]) == after_stop

    # Resume continues the same study.
    page.locator(f"{PANEL} button[data-cmd=resume]").click()
    wait_state(page, ("starting", "running"), timeout=30_000)
    wait_finished(page, after_stop + 2)
    assert hpo_nb.status(STUDY, storage=url).state == "running"
    guard.check()


def test_space_edit_validates_and_applies(
    page: Page, lab_server: Server, guard: PageGuard, folder: str, artifacts: Path
) -> None:
    """Setup tab: low > high shows the validator's message; narrowing x to [-5, -4] and Apply
    makes every later trial draw x <= -4."""
    path = lab_server.notebook(NOTEBOOK, folder)
    show_panel_and_start(page, lab_server, path)
    wait_finished(page, 2)
    open_tab(page, "setup")
    error = page.locator(f"{PANEL} .hpo-space-error")
    row = page.locator(f'{PANEL} .hpo-param[data-param="x"]')
    expect(row).to_be_visible()
    expect(row.locator('[data-field="low"]')).to_have_value("-5")

    apply = page.locator(f"{PANEL} button[data-cmd=apply]")
    edit(page, "x", "high", "-6")  # low -5 > high -6
    expect(error).to_contain_text("greater than high", timeout=10_000)
    expect(apply).to_be_disabled()
    shoot(page, artifacts, "lab_setup_error")

    edit(page, "x", "high", "-4")
    expect(error).to_have_text("", timeout=10_000)
    expect(apply).to_be_enabled(timeout=10_000)
    url = storage(lab_server, folder)
    apply.click()

    # The space the panel shows is the one later trials use.
    expect(row.locator('[data-field="high"]')).to_have_value("-4", timeout=20_000)
    study = page.locator(PANEL).get_attribute("data-study") or STUDY  # a child study if branched
    if study == STUDY:  # narrowed in place: from the moment the run says it took the edit
        open_tab(page, "events")
        events = page.locator(f"{PANEL} .hpo-view[data-view=events]")
        expect(events).to_contain_text("later trials use the edited search space", timeout=20_000)
    before = max(t.number for t in trials(url))
    wait_finished(page, finished(page) + 3 + IN_FLIGHT)

    def later() -> list[optuna.trial.FrozenTrial]:
        rows = trials(url, study)
        if study == STUDY:
            rows = [t for t in rows if t.number > before + IN_FLIGHT]
        return [t for t in rows if t.state.is_finished() and "x" in t.params]

    deadline = time.monotonic() + 60
    while len(later()) < 3 and time.monotonic() < deadline:
        time.sleep(0.5)
    checked = later()
    assert len(checked) >= 3, f"only {len(checked)} trials after Apply in study {study!r}"
    bad = {t.number: t.params["x"] for t in checked if t.params["x"] > -4}
    assert not bad, f"trials started after Apply drew x > -4: {bad}"
    guard.check()


def test_notebook7_shows_the_panel(
    page: Page, notebook_server: Server, guard: PageGuard, folder: str, artifacts: Path
) -> None:
    """The same notebook in Notebook 7: the panel renders, Start runs trials, the count grows;
    Stop now ends the study at once and leaves no trial RUNNING."""
    path = notebook_server.notebook(NOTEBOOK, folder)
    show_panel_and_start(page, notebook_server, path)
    count = finished(page)
    wait_finished(page, count + 2)
    shoot(page, artifacts, "nb7_panel")

    page.locator(f"{PANEL} button[data-cmd=stop_now]").click()
    assert wait_state(page, ENDED, timeout=30_000) == "stopped"
    url = storage(notebook_server, folder)
    assert hpo_nb.status(STUDY, storage=url).state == "stopped"
    left = [t.number for t in trials(url) if t.state == optuna.trial.TrialState.RUNNING]
    assert not left, f"trials left RUNNING after Stop now: {left}"
    guard.check()

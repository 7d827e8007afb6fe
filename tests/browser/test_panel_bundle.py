"""The panel's bundle on its own in chromium, with a stand-in for anywidget's model: the parts of
the contract (widgets/PROTOCOL.md) the notebook tests do not reach. No Jupyter server: the page
imports ``widgets/panel.js`` from a blob: URL, as anywidget does, and the test plays the kernel
(traits, ``trials`` messages) and reads the commands the panel sends.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from .conftest import PageGuard

pytestmark = [
    pytest.mark.browser,
    pytest.mark.filterwarnings(
        "ignore:Session-scoped fixtures defined as instance methods:pytest.PytestRemovedIn10Warning"
    ),
]

WIDGETS = Path(__file__).resolve().parents[2] / "widgets"
PANEL = ".hpo-panel"

# A fake model: get/on/off/send as anywidget's; window.kernel plays the kernel.
MOUNT = """async ([source, css, traits]) => {
  const style = document.createElement("style");
  style.textContent = css;
  document.head.append(style);
  const listeners = {};
  const emit = (event, ...args) => (listeners[event] || []).forEach((fn) => fn(...args));
  const sent = [];
  const model = {
    get: (name) => traits[name],
    on: (event, fn) => (listeners[event] ||= []).push(fn),
    off: (event, fn) => { listeners[event] = (listeners[event] || []).filter((f) => f !== fn); },
    send: (content) => sent.push(JSON.parse(JSON.stringify(content))),
  };
  window.kernel = {
    sent,
    set: (name, value) => { traits[name] = value; emit(`change:${name}`); },
    message: (content) => emit("msg:custom", content, []),
  };
  const url = URL.createObjectURL(new Blob([source], { type: "text/javascript" }));
  const module = await import(url);
  const el = document.createElement("div");
  document.body.append(el);
  window.kernel.cleanup = module.default.render({ model, el });
}"""

FIELDS = [  # options["fields"]: ConfigField
    {"name": "n_trials", "label": "trials", "kind": "int", "min": 1, "nullable": False},
    {"name": "min_delta", "label": "min delta", "kind": "float", "min": 0, "nullable": False},
    {"name": "note", "label": "note", "kind": "text", "min": None, "nullable": True},
]
FIELDS = [{**field, "help": f"what {field['name']} does"} for field in FIELDS]


def traits(**changes: Any) -> dict[str, Any]:
    base = {
        "study": {"name": "s", "directions": ["minimize"], "objective": "f"},
        "progress": {"state": "idle", "finished": 0, "target": 10},
        "config": {"sampler": "auto", "pruner": "median", "n_trials": 10, "min_delta": 0.0},
        "options": {"samplers": ["auto", "tpe"], "pruners": ["median"], "fields": FIELDS},
        "space": {"params": {}, "source": "none"},
        "draft_error": "",
        "config_error": "",
        "can": {"start": True},
        "status": "",
        "top": [],
        "importance": {},
        "exports": [],
    }
    return {**base, **changes}


def row(n: int, values: list[float], **params: Any) -> dict[str, Any]:
    return {"n": n, "s": "complete", "v": values, "p": params, "w": "w0", "g": None,
            "t0": 1e9 + n, "t1": 1e9 + n + 1, "iv": [], "ps": None, "r": ""}  # fmt: skip


def mount(page: Page, **changes: Any) -> None:
    source = (WIDGETS / "panel.js").read_text()
    css = (WIDGETS / "panel.css").read_text()
    page.set_content("<!doctype html><html><body></body></html>")
    page.evaluate(MOUNT, [source, css, traits(**changes)])
    expect(page.locator(PANEL)).to_be_visible()


def sent(page: Page) -> list[dict[str, Any]]:
    return page.evaluate("() => window.kernel.sent")


def send_rows(page: Page, rows: list[dict[str, Any]], reset: bool = True) -> None:
    message = {"kind": "trials", "reset": reset, "rows": rows, "total": len(rows)}
    page.evaluate("m => window.kernel.message(m)", message)


def points(page: Page, view: str, at_least: int) -> int:
    page.locator(f"{PANEL} button[data-tab={view}]").click()
    handle = page.wait_for_function(
        """([view, n]) => {
          const svg = document.querySelector(`.hpo-panel svg[data-chart="${view}"]`);
          const points = svg ? Number(svg.dataset.points) : -1;
          return points >= n ? points : null;
        }""",
        arg=[view, at_least],
    )
    return int(handle.json_value())


def test_run_settings_are_the_fields_the_kernel_lists(page: Page, guard: PageGuard) -> None:
    mount(page)
    assert sent(page) == [{"cmd": "sync"}]  # a new view asks for the trials first
    inputs = page.locator(f"{PANEL} .hpo-numbers input[data-config]")
    expect(inputs).to_have_count(3)
    trials = page.locator(f"{PANEL} input[data-config=n_trials]")
    expect(trials).to_have_value("10")
    assert trials.get_attribute("type") == "number" and trials.get_attribute("step") == "1"
    assert trials.get_attribute("min") == "1"
    label = page.locator(f"{PANEL} label:has(input[data-config=n_trials])")
    assert label.get_attribute("title") == "what n_trials does"
    assert page.locator(f"{PANEL} input[data-config=min_delta]").get_attribute("step") == "any"
    note = page.locator(f"{PANEL} input[data-config=note]")
    assert note.get_attribute("type") == "text" and note.get_attribute("placeholder") == "none"

    trials.fill("25")
    page.locator(f"{PANEL} input[data-config=min_delta]").fill("")
    note.fill("first try")
    page.wait_for_function("() => window.kernel.sent.length >= 4")
    configs = [m["config"] for m in sent(page) if m["cmd"] == "config"]
    assert {"n_trials": 25} in configs and {"min_delta": None} in configs
    assert {"note": "first try"} in configs
    guard.check()


def test_the_pareto_chart_marks_the_kernels_front(
    page: Page, guard: PageGuard, artifacts: Path
) -> None:
    study = {"name": "s", "directions": ["minimize", "minimize"], "objective": "a, b"}
    mount(page, study=study)
    # Trials 0-4 trade one objective for the other; 5-9 are each worse than one of them.
    rows = [row(i, [i % 5 + (i >= 5) / 2, 4 - i % 5 + (i >= 5) / 2]) for i in range(10)]
    front = [*rows[:5], row(99, [-1.0, 20.0])]  # trial 99: not among the rows the panel holds
    page.evaluate("top => window.kernel.set('top', top)", front)
    send_rows(page, rows)
    assert points(page, "pareto", 11) == 11
    chart = page.locator(f"{PANEL} svg[data-chart=pareto]")
    expect(chart.locator("circle.hpo-dot-front")).to_have_count(6)
    expect(chart.locator("circle.hpo-dot-muted")).to_have_count(5)
    expect(chart.locator("polyline.hpo-front-line")).to_have_count(1)
    page.locator(PANEL).screenshot(path=str(artifacts / "bundle_pareto.png"))
    guard.check()


def test_views_draw_every_row_they_hold(page: Page, guard: PageGuard, artifacts: Path) -> None:
    """The kernel samples (``sync``); the views draw all they hold, many marks as few paths."""
    mount(page)
    rows = [row(i, [((i * 37) % 101) / 10], x=(i % 97) / 97, y=(i % 89) / 89) for i in range(3000)]
    send_rows(page, rows)
    assert points(page, "parallel", 3000) == 3000
    assert page.locator(f"{PANEL} svg[data-chart=parallel] .hpo-lines path").count() <= 8
    page.locator(PANEL).screenshot(path=str(artifacts / "bundle_parallel_3000.png"))
    assert points(page, "contour", 3000) == 3000
    assert points(page, "slice", 6000) == 6000  # two params

    more = [row(3000 + i, [1.0], x=0.5, y=0.5) for i in range(3001)]  # 6001 held: too many
    send_rows(page, more, reset=False)
    page.wait_for_function("() => window.kernel.sent.filter((m) => m.cmd === 'sync').length == 2")
    assert int(page.locator(PANEL).get_attribute("data-rows") or 0) == 6001
    guard.check()

"""Property-based fuzzing (hypothesis) of what parses user input: the search-space parser
(Python data, YAML/JSON text, the panel's drafts and settings) and the magics' argument parser.

The property, whatever the input: a valid result, or hpo_nb's one-line error (``HpoError``;
``UsageError`` from a magic), never another exception. The magics run in an in-process IPython
shell with what they delegate to replaced by stubs, so that no study or cluster is touched.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from IPython.core.error import UsageError

import hpo_nb
from hpo_nb import HpoError
from hpo_nb.engine.options import option_specs
from hpo_nb.frontends.console import Console
from hpo_nb.search.objective import as_objective
from hpo_nb.search.space import KINDS, SearchSpace

EXAMPLES = int(os.environ.get("HPO_NB_FUZZ_EXAMPLES", "300"))  # per test; more for a deeper run
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,  # no saved examples: each run draws afresh (a failure prints its example)
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def one_line(message: str) -> None:
    assert message.strip(), "an empty message"
    assert "\n" not in message and "\r" not in message, message


# -- strategies ------------------------------------------------------------------------------
NUMBERS = st.one_of(
    st.integers(-5, 10),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, 1, 1e-5, 0.1, 0.3, 1e300, -1e308, 5e-324, 2**63, 10**400, -(10**400)]),
)
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, st.text(max_size=6))
JSON_LIKE = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4)
    ),
    max_leaves=16,
)
NAMES = st.sampled_from(["x", "y", "opt", "", " ", "é"]) | st.text(max_size=3)
SPEC = st.fixed_dictionaries(
    {"type": st.sampled_from([*KINDS, "double", None])},
    optional={
        "low": NUMBERS | SCALARS,
        "high": NUMBERS | SCALARS,
        "log": st.booleans() | SCALARS,
        "step": NUMBERS | st.none(),
        "choices": st.lists(SCALARS, max_size=4) | SCALARS,
        "when": st.dictionaries(NAMES, SCALARS | st.lists(SCALARS, max_size=3), max_size=2)
        | SCALARS,
        "scale": SCALARS,
    },
)
SPACES = st.dictionaries(NAMES, SPEC | st.lists(SCALARS, max_size=4) | JSON_LIKE, max_size=4)
YAML_TOKENS = [
    "x:", "y:", "{", "}", "[", "]", ",", "\n", "  ", "- ", "type:", "float", "int",
    "categorical", "low:", "high:", "step:", "log:", "choices:", "when:", "1", "-1", "0",
    "1e-5", "0.5", "1e400", "true", "null", "~", ".nan", ".inf", "&a", "*a", "!!float",
    "!!binary", "!!python/object", "2001-02-30", "'", '"', "? ", "|", "#", "%YAML 1.1\n---\n",
    "\t", "é", "\\",
]  # fmt: skip
YAML_TEXT = st.lists(st.sampled_from(YAML_TOKENS), max_size=24).map(" ".join) | st.text(max_size=40)


@st.composite
def near_valid_spaces(draw: Any) -> dict[str, Any]:
    """Spaces most of which are valid (ordered bounds, steps, a condition on a choice), so
    that what a valid space must be is checked too; the rest miss by a little."""
    choice = st.none() | st.booleans() | st.integers(-3, 3) | st.text(max_size=3)
    unique = (lambda v: (type(v).__name__, v)) if draw(st.integers(0, 9)) else None
    choices = draw(st.lists(choice, min_size=1, max_size=4, unique_by=unique))
    space: dict[str, Any] = {"c": choices}
    for name in ("n", "x"):
        whole = name == "n"
        bound = st.integers(-(10**6), 10**6) if whole else st.floats(-1e6, 1e6)
        low, high = sorted(draw(st.lists(bound, min_size=2, max_size=2)))
        spec: dict[str, Any] = {"type": "int" if whole else "float", "low": low, "high": high}
        if draw(st.integers(0, 9)) == 0:  # a bound of any kind, now and then
            spec[draw(st.sampled_from(["low", "high"]))] = draw(NUMBERS)
        if draw(st.booleans()):
            spec["log"] = draw(st.booleans())
        if draw(st.booleans()):
            steps = st.integers(1, 7) if whole else st.sampled_from([0.1, 0.25, 1.0]) | NUMBERS
            spec["step"] = draw(steps)
        if draw(st.booleans()):
            allowed = st.sampled_from(choices)
            spec["when"] = {"c": draw(allowed if draw(st.integers(0, 9)) else SCALARS)}
        space[name] = spec
    return space


def valid(space: SearchSpace) -> None:
    """What a parsed space must be: its canonical form parses to itself, and it gives Optuna
    distributions and a grid."""
    assert SearchSpace.from_dict(space.to_dict()) == space
    assert set(space.distributions()) == set(space.names)
    grid = space.grid(3)
    assert all(grid[name] for name in space.names)


def parses_or_one_line(value: Any) -> None:
    try:
        space = SearchSpace.parse(value)
    except HpoError as e:
        one_line(str(e))
        return
    valid(space)


# -- the space parser ------------------------------------------------------------------------
@FUZZ
@given(SPACES)
def test_a_space_from_data_parses_or_is_one_line(data):
    parses_or_one_line(data)


@FUZZ
@given(near_valid_spaces())
def test_a_near_valid_space_parses_or_is_one_line(data):
    parses_or_one_line(data)


@FUZZ
@given(JSON_LIKE)
def test_any_data_parses_as_a_space_or_is_one_line(data):
    parses_or_one_line(data)


@FUZZ
@given(YAML_TEXT)
def test_any_text_parses_as_a_space_or_is_one_line(text):
    parses_or_one_line(text)


@pytest.fixture(scope="module")
def console(tmp_path_factory) -> Console:
    """The panel of a new study with a declared space (nothing in its storage yet)."""
    folder = tmp_path_factory.mktemp("panel")
    space = {"x": {"type": "float", "low": 0.0, "high": 1.0}}
    objective = as_objective(lambda trial: trial.params["x"])
    options = hpo_nb.RunOptions(storage=f"sqlite:///{folder / 'hpo.db'}", space=space)
    panel = Console(study="drafts", objective=objective, options=options)
    assert panel.loaded.wait(60)
    return panel


@FUZZ
@given(st.one_of(SPACES, JSON_LIKE, st.fixed_dictionaries({"params": SPACES | JSON_LIKE})))
def test_a_panel_draft_is_checked_in_one_line(console, space):
    """The editor's drafts (``{"params": ...}`` or anything else): a valid space clears the
    draft error, an invalid one sets it, in one line; the panel's status never reports a
    failure of the command itself."""
    console.panel.status = ""
    console.command({"cmd": "draft", "space": space})
    if console.panel.draft_error:
        one_line(console.panel.draft_error)
    else:
        params = space.get("params") if isinstance(space, dict) else None
        valid(SearchSpace.parse(params))
    assert console.panel.status == ""


@FUZZ
@given(JSON_LIKE | st.dictionaries(st.sampled_from(list(option_specs())), JSON_LIKE, max_size=3))
def test_a_panel_setting_is_checked_in_one_line(console, change):
    before = dict(console.panel.config)
    console.panel.status = ""
    console.command({"cmd": "config", "config": change})
    if console.panel.config_error:
        one_line(console.panel.config_error)
        assert console.panel.config == before
    assert console.panel.status == ""


# -- the magics' argument parser -------------------------------------------------------------
class Reached(Exception):
    """A magic parsed its line and called what it delegates to (a stub here)."""


def _reached(*args: Any, **kwargs: Any) -> Any:
    raise Reached(args, kwargs)


def _run(objective: Any, *, options: hpo_nb.RunOptions) -> Any:
    assert isinstance(options, hpo_nb.RunOptions)
    raise Reached(objective, options)


@pytest.fixture(scope="module")
def shell(tmp_path_factory) -> Iterator[Any]:
    """An in-process IPython shell with hpo_nb loaded; what the magics delegate to is a stub,
    so a line that parses reaches it and nothing else happens."""
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("IPYTHONDIR", str(tmp_path_factory.mktemp("ipython")))
        mp.chdir(tmp_path_factory.mktemp("notebook"))
        mp.setattr("hpo_nb.frontends.magics.run", _run)
        mp.setattr("hpo_nb.frontends.magics.Console", _reached)
        mp.setattr("hpo_nb.frontends.magics.show_console", _reached)
        for name in ("resume", "studies", "status", "stop", "best", "export", "export_archive"):
            mp.setattr(f"hpo_nb.engine.lifecycle.{name}", _reached)
        for name in ("plots", "import_archive", "delete"):
            mp.setattr(f"hpo_nb.engine.lifecycle.{name}", _reached)
        mp.setattr("hpo_nb.engine.lifecycle.recorded_config", lambda *a, **k: {})
        config = Config()
        config.HistoryManager.enabled = False
        ipython = InteractiveShell.instance(config=config)
        try:
            ipython.run_line_magic("load_ext", "hpo_nb")
            ipython.run_cell_magic("hpo_objective", "quadratic", "trial.suggest_float('x', 0, 1)")
            ipython.user_ns.update(
                SPACE={"x": {"type": "float", "low": 0, "high": 1}}, ENQUEUE={"x": 0.5}, BAD=3
            )
            yield ipython
        finally:
            ipython.run_line_magic("unload_ext", "hpo_nb")
            InteractiveShell.clear_instance()


FLAGS = sorted(
    {spec.flag or "--" + name.replace("_", "-") for name, spec in option_specs().items()}
    | {"--wait", "-o", "--bogus", "-", "--", "-x", "--now", "--yes", "--cell", "--format"}
    | {"--out", "--archive", "--plots", "--plot-formats", "--direction", "--directions"}
)
WORD = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\n\r"),
    max_size=8,
)
VALUES = st.one_of(
    st.integers(-(10**6), 10**6).map(str),
    st.floats().map(repr),
    WORD,
    WORD.map(lambda w: f"'{w}'"),
    WORD.map(lambda w: f'"{w}"'),
    st.sampled_from(["''", '""', "'", '"', "'abc", "SPACE", "ENQUEUE", "BAD", "quadratic"]),
    st.sampled_from(["{x: 1}", "'{x: [1, 2]}'", "'{\"x\": 0.5}'", "\"{'x': 9}\"", "'[1, 2]'"]),
    st.sampled_from(["'{[1]: 2}'", "tpe", "random", "median", "none", "minimize", "0,1"]),
    st.tuples(st.sampled_from(["n_startup_trials", "seed", "x", ""]), WORD).map("=".join),
)
TOKENS = st.lists(st.sampled_from(FLAGS) | VALUES, max_size=10)
LINE_MAGICS = [
    "hpo_run", "hpo_resume", "hpo_panel", "hpo_list", "hpo_status", "hpo_stop", "hpo_best",
    "hpo_export", "hpo_import", "hpo_delete",
]  # fmt: skip
LINES = st.one_of(
    st.tuples(st.sampled_from(["quadratic", "nope", "SPACE"]), TOKENS).map(
        lambda t: " ".join([t[0], *t[1]])
    ),
    WORD.map(lambda w: w * 3),
)


def parsed_or_usage_error(call: Any) -> None:
    """``call()`` reaches a stub (it parsed) or raises a one-line ``UsageError``."""
    try:
        call()
    except Reached:
        return
    except UsageError as e:
        one_line(str(e))
        return
    # Some magics return without delegating: %hpo_status and %hpo_stop of this kernel's runs.


@FUZZ
@given(st.sampled_from(LINE_MAGICS), LINES)
def test_a_magic_line_parses_or_is_one_line(shell, magic, line):
    parsed_or_usage_error(lambda: shell.run_line_magic(magic, line))


@FUZZ
@given(LINES)
def test_hpo_run_options_parse_or_are_one_line(shell, line):
    """``%hpo_run``: every option flag with values of every kind (its delegate checks that
    what it gets is a RunOptions)."""
    parsed_or_usage_error(lambda: shell.run_line_magic("hpo_run", "quadratic --n-trials 3 " + line))


@FUZZ
@given(LINES, st.sampled_from(["1", "x = 1", "", "trial.suggest_float('x', 0, 1)", "yield 1"]))
def test_an_objective_cell_line_parses_or_is_one_line(shell, line, cell):
    try:
        shell.run_cell_magic("hpo_objective", "f_" + line, cell)
    except UsageError as e:
        one_line(str(e))

from __future__ import annotations

import traceback

import optuna
import pytest

from hpo_nb import HpoError, objective_from_cell
from hpo_nb.search.objective import as_objective, parse_directions


def fixed(**params):
    return optuna.trial.FixedTrial(params)


def test_last_expression_is_the_value():
    obj = objective_from_cell("f", "x = trial.suggest_float('x', 0, 10)\nx * 2", {})
    assert obj(fixed(x=3.0)) == 6.0


def test_explicit_return_works_anywhere():
    src = "x = trial.suggest_int('x', 0, 10)\nif x > 5:\n    return 1.0\ny = x + 1\nreturn float(y)"
    obj = objective_from_cell("f", src, {})
    assert obj(fixed(x=7)) == 1.0
    assert obj(fixed(x=2)) == 3.0


def test_uses_notebook_globals_imports_and_functions():
    namespace: dict = {}
    exec("import math\nscale = 10\ndef helper(v):\n    return math.sqrt(v) * scale", namespace)
    obj = objective_from_cell("f", "helper(trial.suggest_float('x', 0, 100))", namespace)
    assert obj(fixed(x=16.0)) == 40.0
    namespace["scale"] = 1  # later changes of notebook variables are seen
    assert obj(fixed(x=16.0)) == 4.0


def test_redefinition_replaces_the_function():
    namespace: dict = {}
    first = objective_from_cell("f", "1.0", namespace)
    second = objective_from_cell("f", "2.0", namespace)
    assert first(fixed()) == 1.0 and second(fixed()) == 2.0
    assert first.fingerprint != second.fingerprint


def test_syntax_error_names_the_cell_line():
    with pytest.raises(HpoError, match=r"syntax error in objective 'f', line 2: .*x = = 1"):
        objective_from_cell("f", "a = 1\nx = = 1\na", {})


def test_tracebacks_show_the_cells_source():
    obj = objective_from_cell("f", "a = 1\nb = a / 0\nb", {})
    with pytest.raises(ZeroDivisionError) as info:
        obj(fixed())
    text = "".join(traceback.format_tb(info.tb))
    assert '<hpo_objective f>", line 2' in text and "b = a / 0" in text


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("", "is empty"),
        ("# only a comment\n", "is empty"),
        ("x = trial.suggest_float('x', 0, 1)", "has no value"),
        ("yield 1", "yield"),
        ("def g():\n    return 1", "has no value"),
    ],
)
def test_cells_that_cannot_be_objectives(source, message):
    with pytest.raises(HpoError, match=message):
        objective_from_cell("f", source, {})


@pytest.mark.parametrize("name", ["1f", "my-objective", "class", ""])
def test_bad_names(name):
    with pytest.raises(HpoError, match="not a valid objective name"):
        objective_from_cell(name, "1", {})


def test_directions():
    assert parse_directions(None, None) == ("minimize",)
    assert parse_directions("maximize", None) == ("maximize",)
    assert parse_directions(None, ["minimize", "maximize"]) == ("minimize", "maximize")
    with pytest.raises(HpoError, match="not both"):
        parse_directions("minimize", ["maximize"])
    with pytest.raises(HpoError, match="unknown direction 'up'"):
        parse_directions("up", None)


def test_plain_functions_become_objectives():
    def quadratic(trial):
        return trial.suggest_float("x", -1, 1) ** 2

    obj = as_objective(quadratic, ("maximize",))
    assert obj.name == "quadratic" and obj.directions == ("maximize",)
    assert obj(fixed(x=0.5)) == 0.25
    with pytest.raises(HpoError, match="must be callable"):
        as_objective(42)


LOW = 0.5


def literal_and_computed(trial):
    depth = trial.suggest_int("depth", 2, 8, step=2)
    trial.suggest_float("lr", 1e-4, 1e-1, log=True)
    trial.suggest_float("computed", LOW, 1.0)  # not a literal: unknown before it runs
    if depth > 4:
        trial.suggest_categorical("act", ["relu", "tanh"])
    return depth


def test_literal_suggest_calls_are_known_before_a_trial_runs():
    """The ``suggest_*`` calls whose arguments are literals give their distributions (in a
    branch or not; the last call of a name wins); computed or invalid ones are left out."""
    cell = (
        "x = trial.suggest_float('x', -10, 10)\n"
        "x = trial.suggest_float('x', -5, 5, step=0.5)\n"
        "k = trial.suggest_int('k', low, 9)\n"
        "bad = trial.suggest_float('bad', 2, 1)\n"
        "u = trial.suggest_uniform('u', 0, 1)\n"
        "q = trial.suggest_discrete_uniform('q', 0, 1, 0.25)\n"
        "g = trial.suggest_loguniform('g', 1e-3, 1)\n"
        "x"
    )
    found = objective_from_cell("f", cell, {"low": 1}).literal_distributions()
    dist = optuna.distributions
    assert found == {
        "x": dist.FloatDistribution(-5, 5, step=0.5),
        "u": dist.FloatDistribution(0, 1),
        "q": dist.FloatDistribution(0, 1, step=0.25),
        "g": dist.FloatDistribution(1e-3, 1, log=True),
    }
    assert as_objective(literal_and_computed).literal_distributions() == {
        "depth": dist.IntDistribution(2, 8, step=2),
        "lr": dist.FloatDistribution(1e-4, 1e-1, log=True),
        "act": dist.CategoricalDistribution(["relu", "tanh"]),
    }
    assert as_objective(lambda trial: 0).literal_distributions() == {}
    assert as_objective(print).literal_distributions() == {}  # no Python source

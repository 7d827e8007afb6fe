from __future__ import annotations

import json
import math
import pickle
import re
import warnings

import optuna
import pytest
import yaml
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from hpo_nb import presets
from hpo_nb._errors import HpoError
from hpo_nb.search.space import SearchSpace

SPACE = {
    "learning_rate": {"type": "float", "low": 1e-5, "high": 1e-1, "log": True},
    "layers": {"type": "int", "low": 1, "high": 8},
    "units": {"type": "int", "low": 32, "high": 512, "step": 32},
    "optimizer": {"type": "categorical", "choices": ["sgd", "adam"]},
    "momentum": {"type": "float", "low": 0.0, "high": 0.99, "when": {"optimizer": "sgd"}},
    "nesterov": {"type": "categorical", "choices": [True, False], "when": {"optimizer": ["sgd"]}},
    "nesterov_boost": {"type": "float", "low": 0, "high": 1, "when": {"nesterov": True}},
    "head_dropout": {"type": "float", "low": 0, "high": 0.5, "when": {"layers": [6, 7, 8]}},
}


@pytest.fixture
def space() -> SearchSpace:
    return SearchSpace.from_dict(SPACE)


def test_canonical_form_spells_out_every_field(space):
    canonical = space.to_dict()
    assert list(canonical) == list(SPACE)
    assert canonical["learning_rate"] == {
        "type": "float",
        "low": 1e-5,
        "high": 0.1,
        "log": True,
        "step": None,
    }
    assert canonical["layers"] == {"type": "int", "low": 1, "high": 8, "log": False, "step": 1}
    assert canonical["optimizer"] == {"type": "categorical", "choices": ["sgd", "adam"]}
    assert canonical["momentum"]["when"] == {"optimizer": ["sgd"]}
    assert (
        canonical["nesterov_boost"]["low"] == 0.0
        and type(canonical["nesterov_boost"]["low"]) is float
    )
    assert "when" not in canonical["units"]


def test_round_trips_through_dict_json_and_yaml(space):
    assert SearchSpace.from_dict(space.to_dict()) == space
    text = json.dumps(space.to_dict())
    assert SearchSpace.from_dict(json.loads(text)) == space
    assert SearchSpace.parse(text) == space
    assert SearchSpace.from_yaml(yaml.safe_dump(space.to_dict(), sort_keys=False)) == space
    assert SearchSpace.parse(space) is space
    assert SearchSpace.parse(SPACE) == space


def test_spaces_are_immutable_hashable_and_picklable(space):
    assert pickle.loads(pickle.dumps(space)) == space
    assert hash(SearchSpace.from_dict(SPACE)) == hash(space)
    momentum = next(p for p in space if p.name == "momentum")
    with pytest.raises(TypeError):
        momentum.when["optimizer"] = ("adam",)  # type: ignore[index]
    with pytest.raises(AttributeError):
        momentum.low = 1.0  # type: ignore[misc]


def test_bare_list_is_categorical_shorthand():
    space = SearchSpace.from_dict({"optimizer": ["sgd", "adam"], "seed": (1, 2)})
    assert space.to_dict() == {
        "optimizer": {"type": "categorical", "choices": ["sgd", "adam"]},
        "seed": {"type": "categorical", "choices": [1, 2]},
    }


def test_yaml_reads_exponents_without_a_dot_as_numbers():
    space = SearchSpace.from_yaml(
        "lr: {type: float, low: 1e-5, high: 1E-1, log: true}\n"
        "optimizer: [sgd, adam]\n"
        "momentum: {type: float, low: 0, high: 0.9, when: {optimizer: sgd}}\n"
    )
    assert space.to_dict()["lr"]["low"] == 1e-5 and space.to_dict()["lr"]["high"] == 0.1
    assert SearchSpace.from_yaml("name: [1e-5abc, x]").to_dict()["name"]["choices"][0] == "1e-5abc"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("x: [1, 2\ny: 3\n", "search space: YAML syntax error on line 2: expected ',' or ']'"),
        ("x: {type: float\n  low: 0\n", "YAML syntax error on line"),
        ("- 1\n- 2\n", "must be a mapping of parameter names to specs, got list"),
        ("", "search space is empty"),
    ],
)
def test_bad_yaml_is_one_line(text, message):
    with pytest.raises(HpoError, match=re.escape(message)) as info:
        SearchSpace.from_yaml(text)
    assert "\n" not in str(info.value)


def test_parse_rejects_other_types():
    with pytest.raises(HpoError, match="got int"):
        SearchSpace.parse(3)  # type: ignore[arg-type]


def test_properties(space):
    assert space.names == tuple(SPACE)
    assert len(space) == len(SPACE) and [p.name for p in space] == list(SPACE)
    assert space.is_conditional and space.has_categorical and not space.is_numeric
    numeric = SearchSpace.from_dict({"x": {"type": "float", "low": 0, "high": 1}})
    assert not numeric.is_conditional and not numeric.has_categorical and numeric.is_numeric
    categorical = SearchSpace.from_dict({"c": ["a", "b"]})
    assert categorical.has_categorical and not categorical.is_numeric
    conditional = SearchSpace.from_dict(
        {
            "x": {"type": "int", "low": 0, "high": 3},
            "y": {"type": "float", "low": 0, "high": 1, "when": {"x": 1}},
        }
    )
    assert conditional.is_conditional and not conditional.has_categorical
    assert not conditional.is_numeric


def test_distributions_cover_every_parameter(space):
    dists = space.distributions()
    assert list(dists) == list(SPACE)
    assert dists["learning_rate"] == FloatDistribution(1e-5, 0.1, log=True)
    assert dists["units"] == IntDistribution(32, 512, step=32)
    assert dists["nesterov"] == CategoricalDistribution([True, False])
    assert dists["momentum"] == FloatDistribution(0.0, 0.99)


def test_param_active_needs_every_dependency(space):
    boost = next(p for p in space if p.name == "nesterov_boost")
    assert boost.active({"nesterov": True})
    assert not boost.active({"nesterov": False})
    assert not boost.active({})
    assert not boost.active({"nesterov": 1})  # True and 1 are different values
    assert dict(boost.when) == {"nesterov": (True,)}


def test_suggest_in_a_real_study_follows_the_conditions(space):
    def objective(trial):
        values = space.suggest(trial)
        assert values == trial.params
        return values["learning_rate"]

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(objective, n_trials=40)
    trials = study.trials
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    seen = set()
    for t in trials:
        p = t.params
        sgd = p["optimizer"] == "sgd"
        assert {"learning_rate", "layers", "units", "optimizer"} <= set(p)
        assert ("momentum" in p) == sgd and ("nesterov" in p) == sgd
        assert ("nesterov_boost" in p) == (sgd and p["nesterov"] is True)
        assert ("head_dropout" in p) == (p["layers"] >= 6)
        assert p["units"] % 32 == 0
        seen.add((sgd, "nesterov_boost" in p, "head_dropout" in p))
    assert {s[0] for s in seen} == {True, False}
    assert {s[1] for s in seen} == {True, False} and {s[2] for s in seen} == {True, False}


def test_fixed_trial_needs_only_the_active_values(space):
    base = {"learning_rate": 1e-3, "layers": 2, "units": 64}
    adam = space.suggest(optuna.trial.FixedTrial({**base, "optimizer": "adam"}))
    assert adam == {**base, "optimizer": "adam"}
    sgd = {**base, "optimizer": "sgd", "momentum": 0.9, "nesterov": True, "nesterov_boost": 0.5}
    assert space.suggest(optuna.trial.FixedTrial(sgd)) == sgd
    with pytest.raises(ValueError, match="momentum"):
        space.suggest(optuna.trial.FixedTrial({**base, "optimizer": "sgd"}))


def test_suggest_works_with_any_trial_like_object():
    calls = []

    class Recorder:
        def suggest_float(self, name, low, high, *, step=None, log=False):
            calls.append(("float", name, low, high, step, log))
            return high

        def suggest_int(self, name, low, high, *, step=1, log=False):
            calls.append(("int", name, low, high, step, log))
            return low

        def suggest_categorical(self, name, choices):
            calls.append(("categorical", name, tuple(choices)))
            return choices[0]

    space = SearchSpace.from_dict(
        {
            "c": ["a", "b"],
            "n": {"type": "int", "low": 2, "high": 10, "step": 2, "when": {"c": "a"}},
            "x": {"type": "float", "low": 0, "high": 1, "step": 0.25, "when": {"c": "b"}},
            "y": {"type": "float", "low": 1, "high": 100, "log": True},
        }
    )
    assert space.suggest(Recorder()) == {"c": "a", "n": 2, "y": 100.0}
    assert calls == [
        ("categorical", "c", ("a", "b")),
        ("int", "n", 2, 10, 2, False),
        ("float", "y", 1.0, 100.0, None, True),
    ]


def test_float_steps_tolerate_rounding_noise():
    space = SearchSpace.from_dict(
        {"x": {"type": "float", "low": 0, "high": 0.1 + 0.2, "step": 0.1}}
    )
    assert space.to_dict()["x"]["high"] == 0.3
    assert space.distributions()["x"] == FloatDistribution(0.0, 0.3, step=0.1)


def test_int_bounds_may_be_whole_floats():
    space = SearchSpace.from_dict({"n": {"type": "int", "low": 1.0, "high": 8.0, "step": 1.0}})
    spec = space.to_dict()["n"]
    assert (spec["low"], spec["high"], spec["step"]) == (1, 8, 1)
    assert all(type(spec[k]) is int for k in ("low", "high", "step"))


def _f(**spec):
    return {"type": "float", "low": 0, "high": 1, **spec}


def _i(**spec):
    return {"type": "int", "low": 1, "high": 8, **spec}


OPT = {"optimizer": ["sgd", "adam"]}

BAD = [
    ([("x", 1)], "search space must be a mapping of parameter names to specs, got list"),
    ({}, "search space is empty; add at least one parameter"),
    ({"": [1]}, "search space: parameter name '' is not a non-empty string"),
    ({3: [1]}, "parameter name 3 is not a non-empty string"),
    ({"x": 5}, "search space: 'x': spec 5 is not a mapping or a list of choices"),
    ({"x": "float"}, "'x': spec 'float' is not a mapping"),
    ({"x": {"low": 0, "high": 1}}, "'x': missing 'type'; use one of 'float', 'int', 'categorical'"),
    ({"x": _f(type="uniform")}, "'x': unknown type 'uniform'; use one of 'float', 'int'"),
    (
        {"x": _f(lo=0)},
        "'x': unknown key 'lo' for a float; allowed keys are 'type', 'low', 'high', 'log', 'step'",
    ),
    ({"x": {"type": "categorical", "choices": [1], "low": 0}}, "unknown key 'low' for a categ"),
    ({"x": {"type": "float", "low": 0}}, "'x': missing 'high'; give both 'low' and 'high'"),
    ({"x": {"type": "int", "high": 3}}, "'x': missing 'low'"),
    ({"x": _f(low="a")}, "'x': low 'a' is not a number; give a finite number"),
    ({"x": _f(high=True)}, "'x': high True is not a number"),
    ({"x": _f(high=math.nan)}, "'x': high nan is not a number"),
    ({"x": _f(high=math.inf)}, "'x': high inf is not a number"),
    (
        {"learning_rate": _f(low=0.1, high=0.001)},
        "search space: 'learning_rate': low 0.1 is greater than high 0.001; swap them",
    ),
    ({"n": _i(low=5, high=2)}, "'n': low 5 is greater than high 2; swap them"),
    ({"x": _f(log="yes")}, "'x': log 'yes' is not true or false"),
    ({"x": _f(log=True)}, "'x': log scale needs low > 0, got low 0; raise low or drop log"),
    ({"x": _f(low=-1, log=True)}, "log scale needs low > 0, got low -1"),
    ({"n": _i(low=0, log=True)}, "'n': log scale needs low >= 1, got low 0"),
    (
        {"x": _f(low=0.1, log=True, step=0.1)},
        "'x': log and step 0.1 cannot be combined (Optuna forbids it); drop one",
    ),
    ({"n": _i(high=9, log=True, step=2)}, "'n': log and step 2 cannot be combined"),
    ({"x": _f(step=0)}, "'x': step 0 is not positive; give a step > 0"),
    ({"n": _i(step=-2)}, "'n': step -2 is not positive"),
    ({"x": _f(step=0.3)}, "'x': step 0.3 does not divide [0, 1]; use high 0.9"),
    ({"n": _i(low=0, high=10, step=3)}, "'n': step 3 does not divide [0, 10]; use high 9"),
    ({"n": _i(low=0.5)}, "'n': int low 0.5 is not a whole number; round it or use 'float'"),
    ({"n": _i(high="8")}, "'n': high '8' is not a number"),
    ({"n": _i(step=1.5)}, "'n': int step 1.5 is not a whole number"),
    ({"c": []}, "'c': choices is empty; list at least one choice"),
    ({"c": {"type": "categorical"}}, "'c': choices None is not a list"),
    ({"c": {"type": "categorical", "choices": "abc"}}, "'c': choices 'abc' is not a list"),
    ({"c": [1, [2]]}, "'c': choice [2] has type list; use None, bool, int, float or str"),
    ({"c": ["a", {"b": 1}]}, "choice {'b': 1} has type dict"),
    ({"c": ["a", "b", "a"]}, "'c': choice 'a' is listed twice; list each choice once"),
    ({**OPT, "m": _f(when="sgd")}, "'m': when 'sgd' is not a mapping"),
    (
        {**OPT, "m": _f(when={"opt": "sgd"})},
        "'m': when names unknown parameter 'opt'; earlier ones are: 'optimizer'",
    ),
    (
        {"m": _f(when={"optimizer": "sgd"}), **OPT},
        "'m': when names 'optimizer', defined later; move 'm' after it",
    ),
    ({"m": _f(when={"m": 0.5})}, "'m': when names the parameter itself"),
    (
        {**OPT, "m": _f(when={"optimizer": "sdg"})},
        "'m': when 'optimizer' is 'sdg', which 'optimizer' never takes; use one of 'sgd', 'adam'",
    ),
    ({**OPT, "m": _f(when={"optimizer": ["sgd", 1]})}, "when 'optimizer' is 1, which"),
    ({**OPT, "m": _f(when={"optimizer": []})}, "'m': when 'optimizer' lists no values"),
    (
        {"n": _i(), "m": _f(when={"n": 9})},
        "'m': when 'n' is 9, which 'n' never takes; use a value in [1, 8] on step 1",
    ),
    ({"n": _i(low=0, high=64, step=32), "m": _f(when={"n": 33})}, "when 'n' is 33, which"),
    ({"n": _i(), "m": _f(when={"n": "2"})}, "when 'n' is '2', which 'n' never takes"),
    ({"b": [True, False], "m": _f(when={"b": 1})}, "when 'b' is 1, which 'b' never takes"),
    ({"x": _f(), "m": _f(when={"x": 2.0})}, "when 'x' is 2.0, which 'x' never takes; use a val"),
]


@pytest.mark.parametrize(("data", "message"), BAD, ids=[m for _, m in BAD])
def test_validation_errors_are_one_line_and_name_the_problem(data, message):
    with pytest.raises(HpoError, match=re.escape(message)) as info:
        SearchSpace.from_dict(data)
    assert "\n" not in str(info.value)


def test_conditions_accept_values_the_parameter_can_take():
    space = SearchSpace.from_dict(
        {
            "n": _i(low=0, high=64, step=32),
            "x": _f(step=0.25),
            "a": _f(when={"n": [0, 64.0], "x": 0.75}),
            "b": {"type": "categorical", "choices": [None, 1], "when": {"a": 0.5}},
        }
    )
    a = next(p for p in space if p.name == "a")
    assert a.active({"n": 64, "x": 0.75}) and not a.active({"n": 32, "x": 0.75})
    assert not a.active({"n": 64})


GRIDS = [
    (["a", "b", None], 5, ["a", "b", None]),
    (_i(), 5, [1, 2, 3, 4, 5, 6, 7, 8]),
    (_i(low=0, high=49), 5, list(range(50))),
    (_i(low=0, high=50), 5, [0, 12, 25, 38, 50]),
    (_i(low=0, high=100), 3, [0, 50, 100]),
    (_i(low=0, high=1000, step=10), 5, [0, 250, 500, 750, 1000]),
    (_i(low=1, high=1000, log=True), 4, [1, 10, 100, 1000]),
    (_i(low=1, high=1000, log=True), 5, [1, 6, 32, 178, 1000]),
    (_i(low=1, high=3, log=True), 5, [1, 2, 3]),
    (_f(step=0.1), 5, [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]),
    (_f(high=10, step=0.1), 5, [0.0, 2.5, 5.0, 7.5, 10.0]),
    (_f(low=-1), 5, [-1.0, -0.5, 0.0, 0.5, 1.0]),
    (_f(), 3, [0.0, 0.5, 1.0]),
    (_f(low=1e-4, high=1, log=True), 5, [1e-4, 1e-3, 1e-2, 1e-1, 1.0]),
    (_f(low=0.5, high=0.5), 5, [0.5]),
]


@pytest.mark.parametrize(("spec", "points", "expected"), GRIDS)
def test_grid_values(spec, points, expected):
    values = SearchSpace.from_dict({"p": spec}).grid(points)["p"]
    assert values == expected
    kind = spec["type"] if isinstance(spec, dict) else "categorical"
    if kind != "categorical":
        assert all(type(v) is {"int": int, "float": float}[kind] for v in values)


@pytest.mark.parametrize("points", [1, 0, 2.5, True, "5"])
def test_grid_points_must_be_an_integer_of_at_least_two(space, points):
    with pytest.raises(HpoError, match="must be an integer >= 2"):
        space.grid(points)


def test_grid_sampler_runs_the_space_to_exhaustion():
    space = SearchSpace.from_dict(
        {
            "optimizer": ["sgd", "adam"],
            "momentum": _f(high=0.9, when={"optimizer": "sgd"}),
            "layers": _i(high=3),
            "lr": _f(low=1e-3, high=1e-1, log=True),
            "width": _f(high=1, step=0.5),
        }
    )
    grid = space.grid(3)
    size = math.prod(len(v) for v in grid.values())
    assert size == 2 * 3 * 3 * 3 * 3
    study = optuna.create_study(sampler=optuna.samplers.GridSampler(grid, seed=0))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. Optuna's "value out of range" warning
        study.optimize(lambda t: space.suggest(t)["lr"], n_trials=10 * size)
    assert len(study.trials) == size
    assert {t.system_attrs["grid_id"] for t in study.trials} == set(range(size))
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)


PRESETS = [
    presets.learning_rate,
    presets.batch_size,
    presets.optimizer,
    presets.weight_decay,
    presets.warmup_ratio,
    presets.dropout,
    presets.label_smoothing,
    presets.ema_decay,
    presets.training,
]


@pytest.mark.parametrize("preset", PRESETS, ids=lambda f: f.__name__)
def test_presets_are_valid_canonical_and_json_able(preset):
    specs = preset()
    assert SearchSpace.from_dict(specs).to_dict() == specs
    assert json.loads(json.dumps(specs)) == specs


def test_preset_contents():
    lr = presets.learning_rate(1e-4, 1e-2)["learning_rate"]
    assert (lr["low"], lr["high"], lr["log"]) == (1e-4, 1e-2, True)
    assert presets.batch_size()["batch_size"]["choices"] == [16, 32, 64, 128, 256, 512]
    assert presets.batch_size(20, 100)["batch_size"]["choices"] == [32, 64]
    assert presets.warmup_ratio(0.1)["warmup_ratio"]["high"] == 0.1
    assert list(presets.training()) == [
        "learning_rate",
        "batch_size",
        "optimizer",
        "momentum",
        "nesterov",
        "beta1",
        "beta2",
        "weight_decay",
        "warmup_ratio",
        "dropout",
        "label_smoothing",
        "ema_decay",
    ]


def test_optimizer_preset_adds_only_the_knobs_of_the_chosen_optimizers():
    assert list(presets.optimizer(["adamw"])) == ["optimizer", "beta1", "beta2"]
    assert list(presets.optimizer(["sgd", "rmsprop"])) == ["optimizer", "momentum", "nesterov"]
    full = presets.optimizer()
    assert full["momentum"]["when"] == {"optimizer": ["sgd"]}
    assert full["beta2"]["when"] == {"optimizer": ["adam", "adamw"]}
    assert list(presets.optimizer(["lion"])) == ["optimizer"]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: presets.batch_size(33, 63), "batch_size: no power of two lies in [33, 63]"),
        (lambda: presets.learning_rate(0, 1), "'learning_rate': log scale needs low > 0"),
        (lambda: presets.dropout(-0.5), "'dropout': low 0.0 is greater than high -0.5"),
        (lambda: presets.optimizer([]), "'optimizer': choices is empty"),
    ],
)
def test_presets_reject_bad_arguments(call, message):
    with pytest.raises(HpoError, match=re.escape(message)):
        call()


def test_training_preset_suggests_in_a_study():
    space = SearchSpace.from_dict(presets.training())
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    study.optimize(lambda t: space.suggest(t)["learning_rate"], n_trials=20)
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    for t in study.trials:
        assert ("momentum" in t.params) == (t.params["optimizer"] == "sgd")
        assert ("beta1" in t.params) == (t.params["optimizer"] != "sgd")

"""``auto``'s start: the middle of the space, then GP's random trials (fewer in 1-2 D)."""

from __future__ import annotations

import numpy as np
import optuna
import pytest

from hpo_nb.search.auto import GP_STARTUP, GP_STARTUP_SMALL, SAMPLER_KEY, AutoSampler, power_warp
from hpo_nb.search.context import Context
from hpo_nb.search.space import SearchSpace

pytest.importorskip("torch")


def bowl(n_params: int):
    def objective(trial: optuna.Trial) -> float:
        return sum(trial.suggest_float(f"x{i}", -2, 2) ** 2 for i in range(n_params))

    return objective


def modelled(n_params: int, complete: int, context: Context | None = None) -> bool:
    """Whether auto's next trial, after ``complete`` trials, comes from GP's model."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = AutoSampler(seed=0, context=context or Context())
    study = optuna.create_study(sampler=sampler)
    study.optimize(bowl(n_params), n_trials=complete)
    trial = study.ask()
    assert sampler.choice == "gp"
    return bool(trial.relative_params)


@pytest.mark.parametrize(
    ("n_params", "start"),
    [(1, GP_STARTUP_SMALL), (2, GP_STARTUP_SMALL), (3, GP_STARTUP), (7, GP_STARTUP)],
)
def test_gp_models_after_fewer_random_trials_on_one_or_two_parameters(n_params, start):
    assert (GP_STARTUP_SMALL, GP_STARTUP) == (5, 10)
    assert not modelled(n_params, start - 1)
    assert modelled(n_params, start)


def test_the_declarative_space_sets_the_start():
    space = SearchSpace.from_dict(
        {f"x{i}": {"type": "float", "low": -2, "high": 2} for i in range(4)}
    )
    # The space says 4 parameters, though the trials so far show only 2.
    assert not modelled(2, GP_STARTUP - 1, Context(space=space))
    assert modelled(2, GP_STARTUP, Context(space=space))


# -- the middle of the space -------------------------------------------------------------------
def ranges(trial: optuna.Trial) -> float:
    x = trial.suggest_float("x", -2, 6)
    lr = trial.suggest_float("lr", 1e-5, 1e-1, log=True)
    n = trial.suggest_int("n", 1, 5)
    units = trial.suggest_int("units", 0, 100, step=10)
    return x**2 + abs(n - 2) + units / 100 + lr


MIDDLE = {"x": 2.0, "lr": pytest.approx(1e-3), "n": 3, "units": 50}


def labels(study: optuna.Study) -> list[str | None]:
    return [t.system_attrs.get(SAMPLER_KEY) for t in study.trials]


def test_the_algorithms_first_trial_is_the_middle_of_every_range():
    study = optuna.create_study(sampler=AutoSampler(seed=0, context=Context()))
    study.optimize(ranges, n_trials=4)
    first, second, *later = study.trials
    assert labels(study) == ["random", "gp", "gp", "gp"]
    assert first.params != MIDDLE and second.params == MIDDLE
    assert all(t.params["x"] != 2.0 and t.params["lr"] != pytest.approx(1e-3) for t in later)


def test_categorical_parameters_are_left_to_the_algorithm_at_the_middle():
    def mixed(trial: optuna.Trial) -> float:
        kind = trial.suggest_categorical("kind", ["a", "b", "c"])
        return ranges(trial) + (kind == "a")

    kinds = set()
    for seed in range(8):
        study = optuna.create_study(sampler=AutoSampler(seed=seed, context=Context()))
        study.optimize(mixed, n_trials=2)
        second = study.trials[1]
        assert labels(study) == ["random", "gp"]
        assert {k: v for k, v in second.params.items() if k != "kind"} == MIDDLE
        kinds.add(second.params["kind"])
    assert len(kinds) > 1


def test_trials_started_before_any_completes_stay_random_and_the_next_is_the_middle():
    study = optuna.create_study(sampler=AutoSampler(seed=0, context=Context()))
    running = [study.ask() for _ in range(3)]
    for trial in running:
        study.tell(trial, ranges(trial))
    study.optimize(ranges, n_trials=2)
    assert labels(study) == ["random"] * 3 + ["gp", "gp"]
    assert [t.params == MIDDLE for t in study.trials] == [False] * 3 + [True, False]


# -- GP's view of the values -----------------------------------------------------------------
def test_the_power_warp_keeps_the_order_and_draws_in_a_long_tail():
    rng = np.random.default_rng(0)
    losses = np.concatenate([0.5 + rng.random(30) / 10, [80.0, 40.0]])
    warped = power_warp(losses)
    assert list(np.argsort(warped)) == list(np.argsort(losses))
    good = losses < 1

    def outlier_spread(v: np.ndarray) -> float:  # the worst one, in spreads of the good ones
        return float((v.max() - np.median(v[good])) / np.std(v[good]))

    assert outlier_spread(warped) < outlier_spread(losses) / 10


def test_the_power_warp_leaves_too_few_values_alone_and_puts_infinite_ones_at_the_ends():
    assert list(power_warp(np.array([1.0, 1.0, 2.0]))) == [1.0, 1.0, 2.0]
    warped = power_warp(np.array([3.0, np.inf, 1.0, 2.0, -np.inf]))
    assert np.all(np.isfinite(warped))
    assert warped[1] == warped.max() and warped[4] == warped.min()


@pytest.mark.parametrize("direction", ["minimize", "maximize"])
def test_gp_is_fitted_to_the_warped_values_and_the_trials_keep_theirs(monkeypatch, direction):
    from optuna.samplers._gp import sampler as gp_sampler

    fitted: list[np.ndarray] = []
    fit = gp_sampler.gp.fit_kernel_params

    def spy(*args, **kwargs):
        fitted.append(np.asarray(kwargs["Y"]).copy())
        return fit(*args, **kwargs)

    monkeypatch.setattr(gp_sampler.gp, "fit_kernel_params", spy)
    sign = 1 if direction == "minimize" else -1

    def heavy_tailed(trial: optuna.Trial) -> float:  # a bowl with a cliff: a long tail
        x, y = trial.suggest_float("x", -2, 2), trial.suggest_float("y", -2, 2)
        return sign * (x**2 + y**2 + (100.0 if x > 1 else 0.0))

    study = optuna.create_study(direction=direction, sampler=AutoSampler(seed=0, context=Context()))
    returned: list[float] = []
    study.optimize(lambda t: returned.append(heavy_tailed(t)) or returned[-1], n_trials=12)
    assert [t.value for t in study.trials] == returned  # the study's values are untouched
    assert fitted, "GP never modelled"
    before_last = np.array(returned[: len(fitted[-1])])
    expected = -power_warp(sign * before_last)  # GP maximizes the negated, warped loss
    expected = (expected - expected.mean()) / expected.std()
    np.testing.assert_allclose(fitted[-1], expected, rtol=1e-6, atol=1e-9)

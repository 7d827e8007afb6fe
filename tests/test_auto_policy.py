"""``auto``'s start: the middle of the space, then GP's random trials (one per parameter)."""

from __future__ import annotations

import optuna
import pytest

from hpo_nb._algorithms import Context
from hpo_nb._auto import GP_STARTUP_MAX, GP_STARTUP_MIN, SAMPLER_KEY, AutoSampler
from hpo_nb._space import SearchSpace

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
    [(2, GP_STARTUP_MIN), (7, 7), (12, GP_STARTUP_MAX)],
)
def test_gp_models_after_one_random_trial_per_parameter_within_bounds(n_params, start):
    assert (GP_STARTUP_MIN, GP_STARTUP_MAX) == (5, 10)
    assert not modelled(n_params, start - 1)
    assert modelled(n_params, start)


def test_the_declarative_space_sets_the_start():
    space = SearchSpace.from_dict(
        {f"x{i}": {"type": "float", "low": -2, "high": 2} for i in range(7)}
    )
    # The space says 7 parameters, though the trials so far show only 2.
    assert not modelled(2, 6, Context(space=space))
    assert modelled(2, 7, Context(space=space))


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

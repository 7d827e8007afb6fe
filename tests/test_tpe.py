"""HistoryTPESampler suggests exactly what Optuna's TPESampler suggests, given the same seed."""

from __future__ import annotations

import math
import random
from typing import Any

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from hpo_nb.search.tpe import HistoryTPESampler

optuna.logging.set_verbosity(optuna.logging.ERROR)


def _objective(trial: optuna.Trial) -> float:
    x = trial.suggest_float("x", -5, 5)
    lr = trial.suggest_float("lr", 1e-5, 1e-1, log=True)
    units = trial.suggest_int("units", 16, 256, step=16)
    layers = trial.suggest_int("layers", 1, 6)
    optimizer = trial.suggest_categorical("optimizer", ["sgd", "adam", "adamw"])
    value = x**2 + abs(math.log10(lr) + 3) + units / 256 + layers / 6
    if optimizer == "sgd":  # a conditional parameter: sampled independently
        value += trial.suggest_float("momentum", 0.0, 0.99)
    return value + {"sgd": 0.5, "adam": 0.0, "adamw": 0.2}[optimizer]


def _play(
    sampler: optuna.samplers.BaseSampler, direction: str, seed: int, pruned: float = 0.2
) -> list[dict[str, Any]]:
    """A study with complete, pruned (with, without and with NaN intermediate values),
    failed, infeasible and running trials; returns every trial's parameters."""
    rng = random.Random(seed)
    study = optuna.create_study(sampler=sampler, direction=direction)
    running = []
    for i in range(60):
        trial = study.ask()
        value = _objective(trial)
        roll = rng.random()
        if i % 9 == 4:
            running.append(trial)  # told later: a running trial for the constant liar
            continue
        if roll < 0.1:
            study.tell(trial, state=TrialState.FAIL)
        elif roll < 0.1 + pruned:
            steps = rng.randrange(0, 4)
            for step in range(steps):
                trial.report(value * (step + 1) if roll > 0.12 else math.nan, step)
            study.tell(trial, state=TrialState.PRUNED)
        else:
            if roll > 0.9:
                trial.set_constraint("budget", rng.uniform(0.1, 2.0))
            study.tell(trial, value)
        if len(running) > 2:
            old = running.pop(0)
            study.tell(old, _objective_value(old))
    return [t.params for t in study.trials]


def _objective_value(trial: optuna.Trial) -> float:
    return sum(v for v in trial.params.values() if isinstance(v, float))


@pytest.mark.parametrize("direction", ["minimize", "maximize"])
@pytest.mark.parametrize(
    "options",
    [{}, {"multivariate": False}, {"constant_liar": False}, {"n_startup_trials": 3}],
)
def test_same_suggestions_as_optuna(direction: str, options: dict[str, Any]) -> None:
    ours = _play(HistoryTPESampler(seed=3, **options), direction, seed=1)
    theirs = _play(optuna.samplers.TPESampler(seed=3, **options), direction, seed=1)
    assert ours == theirs


@pytest.mark.parametrize("direction", ["minimize", "maximize"])
def test_same_suggestions_when_pruned_trials_fill_the_good_group(direction: str) -> None:
    ours = _play(HistoryTPESampler(seed=5), direction, seed=2, pruned=0.85)
    theirs = _play(optuna.samplers.TPESampler(seed=5), direction, seed=2, pruned=0.85)
    assert ours == theirs


def test_reads_each_finished_trial_once() -> None:
    sampler = HistoryTPESampler(seed=0)
    study = optuna.create_study(sampler=sampler)
    study.optimize(lambda t: t.suggest_float("x", 0, 1) ** 2, n_trials=30)
    history = sampler._histories[study._study_id]
    assert len(history) == 29  # every finished trial before the last suggestion, once
    assert [t.number for t in history.trials] == list(range(29))


def test_multi_objective_takes_optunas_path() -> None:
    def two(trial: optuna.Trial) -> tuple[float, float]:
        x = trial.suggest_float("x", 0, 1)
        return x, 1 - x

    ours = optuna.create_study(directions=["minimize"] * 2, sampler=HistoryTPESampler(seed=2))
    theirs = optuna.create_study(
        directions=["minimize"] * 2, sampler=optuna.samplers.TPESampler(seed=2)
    )
    ours.optimize(two, n_trials=25)
    theirs.optimize(two, n_trials=25)
    assert [t.params for t in ours.trials] == [t.params for t in theirs.trials]


def test_densities_are_optunas_bit_for_bit() -> None:
    """The acquisition's densities, including candidates outside the bounds (Optuna gives them
    -inf), log and stepped parameters, and an estimator with no observations."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
    from optuna.samplers._tpe.parzen_estimator import (
        _ParzenEstimator,
        _ParzenEstimatorParameters,
    )
    from optuna.samplers._tpe.sampler import default_weights

    from hpo_nb.search.tpe import _log_pdf

    space = {
        "x": FloatDistribution(-5, 5),
        "lr": FloatDistribution(1e-5, 1e-1, log=True),
        "units": IntDistribution(16, 256, step=16),
        "batch": IntDistribution(8, 512, log=True),
        "optimizer": CategoricalDistribution(["sgd", "adam", "adamw"]),
    }
    parameters = _ParzenEstimatorParameters(1.0, True, False, default_weights, False)
    rng = np.random.RandomState(0)
    for n in (0, 1, 7, 400, 3000):  # 3000: Optuna's erf switches method at 2000 values
        observations = {
            "x": rng.uniform(-5, 5, n),
            "lr": np.exp(rng.uniform(np.log(1e-5), np.log(1e-1), n)),
            "units": rng.randint(1, 17, n) * 16.0,
            "batch": np.round(np.exp(rng.uniform(np.log(8), np.log(512), n))),
            "optimizer": rng.randint(0, 3, n).astype(float),
        }
        for names in (list(space), ["x"], ["units", "optimizer"], ["lr", "batch"]):
            sub = {k: space[k] for k in names}
            estimator = _ParzenEstimator({k: observations[k] for k in names}, sub, parameters)
            candidates = estimator._transform(estimator.sample(rng, 24))
            if "x" in names:
                candidates[:3, names.index("x")] = [-6.0, 5.0, 7.5]  # outside and on a bound
            expected = estimator._mixture_distribution.log_pdf(candidates)
            assert np.array_equal(
                _log_pdf(estimator._mixture_distribution, candidates), expected, equal_nan=True
            )


@pytest.mark.parametrize("multivariate", [True, False])
def test_same_suggestions_over_a_long_discrete_study(multivariate: bool) -> None:
    """Hundreds of trials over discrete and categorical parameters: candidates repeat."""

    def objective(trial: optuna.Trial) -> float:
        units = trial.suggest_int("units", 16, 256, step=16)
        layers = trial.suggest_int("layers", 1, 6)
        optimizer = trial.suggest_categorical("optimizer", ["sgd", "adam", "adamw"])
        dropout = trial.suggest_float("dropout", 0.0, 0.5, step=0.05)
        return abs(units - 96) / 16 + layers + dropout + len(optimizer)

    studies = []
    for sampler in (HistoryTPESampler, optuna.samplers.TPESampler):
        study = optuna.create_study(sampler=sampler(seed=7, multivariate=multivariate))
        study.optimize(objective, n_trials=300)
        studies.append([t.params for t in study.trials])
    assert studies[0] == studies[1]


def test_distinct_pairs_are_optunas() -> None:
    from optuna.samplers._tpe.probability_distributions import _unique_inverse_2d

    from hpo_nb.search.tpe import _unique_pairs

    rng = np.random.RandomState(1)
    for n in (1, 2, 50, 10_000):
        a = rng.randint(0, 8, n).astype(float)  # many ties, as stepped parameters have
        b = np.where(rng.rand(n) < 0.7, 0.5, rng.rand(n))
        ours, theirs = _unique_pairs(a, b), _unique_inverse_2d(a, b)
        for mine, optunas in zip(ours, theirs, strict=True):
            assert mine.dtype == optunas.dtype and np.array_equal(mine, optunas)

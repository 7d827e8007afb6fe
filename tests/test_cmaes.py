"""HistoryCmaEsSampler suggests exactly what Optuna's CmaEsSampler suggests, given the same seed,
also with many trials at once finishing out of order."""

from __future__ import annotations

import random
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from hpo_nb.search.cmaes import HistoryCmaEsSampler

optuna.logging.set_verbosity(optuna.logging.ERROR)
# with_margin, use_separable_cma and consider_pruned_trials are experimental in Optuna
pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")


def _objective(trial: optuna.Trial) -> float:
    x = trial.suggest_float("x", -5, 5)
    lr = trial.suggest_float("lr", 1e-5, 1e-1, log=True)
    units = trial.suggest_int("units", 16, 256, step=16)
    return (x - 1) ** 2 + abs(lr - 1e-3) * 100 + (units - 128) ** 2 / 1e4


def _one(trial: optuna.Trial) -> float:
    return (trial.suggest_float("x", -10, 10) - 3) ** 2


def _play(
    sampler: optuna.samplers.BaseSampler,
    objective: Any,
    *,
    direction: str = "minimize",
    at_once: int = 16,
    n: int = 160,
    seed: int = 0,
) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """``at_once`` trials asked before any is told, then told in a shuffled order, one new
    trial asked after each: complete, pruned (with and without intermediate values) and failed.
    Returns each trial's state, parameters and system attributes (the stored optimizer too)."""
    rng = random.Random(seed)
    study = optuna.create_study(sampler=sampler, direction=direction)
    running: list[optuna.Trial] = []
    asked = 0
    while asked < n or running:
        while asked < n and len(running) < at_once:
            trial = study.ask()
            trial.value_ = objective(trial)  # type: ignore[attr-defined]
            running.append(trial)
            asked += 1
        trial = running.pop(rng.randrange(len(running)))
        roll = rng.random()
        if roll < 0.05:
            study.tell(trial, state=TrialState.FAIL)
        elif roll < 0.15:
            for step in range(rng.randrange(0, 3)):
                trial.report(trial.value_ + step, step)  # type: ignore[attr-defined]
            study.tell(trial, state=TrialState.PRUNED)
        else:
            study.tell(trial, trial.value_)  # type: ignore[attr-defined]
    return [(t.state.name, t.params, t.system_attrs) for t in study.trials]


def _assert_same(ours: list[Any], theirs: list[Any]) -> None:
    """The same trials, parameters and system attributes; the stored optimizers' bytes are
    left out: CMA-ES keeps a history buffer made with ``np.empty`` (Optuna's own runs store
    different bytes there), which nothing reads for sampling."""

    def comparable(play: list[Any]) -> list[Any]:
        return [
            (state, params, {k: (v if ":optimizer:" not in k else None) for k, v in attrs.items()})
            for state, params, attrs in play
        ]

    assert comparable(ours) == comparable(theirs)


@pytest.mark.parametrize("direction", ["minimize", "maximize"])
@pytest.mark.parametrize(
    "options",
    [
        {},
        {"popsize": 4},
        {"consider_pruned_trials": True},
        {"with_margin": True},
        {"use_separable_cma": True},
        {"n_startup_trials": 5},
    ],
)
def test_same_suggestions_as_optuna(direction: str, options: dict[str, Any]) -> None:
    ours = _play(HistoryCmaEsSampler(seed=3, **options), _objective, direction=direction)
    theirs = _play(optuna.samplers.CmaEsSampler(seed=3, **options), _objective, direction=direction)
    _assert_same(ours, theirs)


@pytest.mark.parametrize("at_once", [1, 64])
def test_same_suggestions_in_one_dimension_with_many_trials_at_once(at_once: int) -> None:
    ours = _play(HistoryCmaEsSampler(seed=1), _one, at_once=at_once, n=300)
    theirs = _play(optuna.samplers.CmaEsSampler(seed=1), _one, at_once=at_once, n=300)
    _assert_same(ours, theirs)


def test_same_suggestions_when_the_space_changes() -> None:
    """A new parameter halfway: CMA-ES's optimizer no longer fits; both fall back alike."""

    def growing(trial: optuna.Trial) -> float:
        value = trial.suggest_float("x", -5, 5) ** 2
        if trial.number >= 40:
            value += trial.suggest_float("y", -5, 5) ** 2
        return value

    ours = _play(HistoryCmaEsSampler(seed=2), growing, n=80, at_once=4)
    theirs = _play(optuna.samplers.CmaEsSampler(seed=2), growing, n=80, at_once=4)
    _assert_same(ours, theirs)


def test_tells_each_generation_its_solutions_once_and_reads_each_trial_once() -> None:
    """With 64 trials at once, Optuna tells the same solutions to the same optimizer for
    suggestion after suggestion, until the trial storing the told one completes; this sampler
    tells them once."""
    import cmaes

    told: list[tuple[int, bytes]] = []
    original = cmaes.CMA.tell

    def counting(self: Any, solutions: Any) -> None:
        told.append((self.generation, b"".join(x.tobytes() for x, _ in solutions)))
        original(self, solutions)

    ours = HistoryCmaEsSampler(seed=0, popsize=8)
    counts = {}
    cmaes.CMA.tell = counting  # type: ignore[method-assign]
    try:
        for name, sampler in [
            ("ours", ours),
            ("optuna", optuna.samplers.CmaEsSampler(seed=0, popsize=8)),
        ]:
            told.clear()
            _play(sampler, _one, at_once=64, n=200)
            counts[name] = (len(told), len(set(told)))
    finally:
        cmaes.CMA.tell = original  # type: ignore[method-assign]
    assert counts["ours"][0] == counts["ours"][1]  # no generation told the same twice
    assert counts["optuna"][0] > 4 * counts["ours"][0]
    (history,) = ours._histories.values()
    numbers = [t.number for t in history.complete]
    assert numbers == sorted(numbers) and len(numbers) == len(set(numbers))

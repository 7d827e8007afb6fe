"""HistoryCmaEsSampler suggests exactly what Optuna's CmaEsSampler suggests, given the same seed,
also with many trials at once finishing out of order; and where the stored optimizer is not this
process's own, it rebuilds it from the trials instead of unpickling it."""

from __future__ import annotations

import logging
import pathlib
import pickle
import random
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import optuna
import pytest
from optuna.trial import FrozenTrial, TrialState

from hpo_nb.search import cmaes
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
    study = optuna.create_study(sampler=sampler, direction=direction)
    _run(study, objective, at_once=at_once, n=n, seed=seed)
    return [(t.state.name, t.params, t.system_attrs) for t in study.trials]


def _run(study: optuna.Study, objective: Any, *, at_once: int, n: int, seed: int = 0) -> None:
    """``n`` trials of ``study`` as ``_play`` runs them."""
    rng = random.Random(seed)
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


# Option sets that CMA-ES's suggestions and its replayed state are checked with.
OPTION_SETS = [
    {},
    {"popsize": 4},
    {"consider_pruned_trials": True},
    {"with_margin": True},
    {"use_separable_cma": True},
    {"n_startup_trials": 5},
]


@pytest.mark.parametrize("direction", ["minimize", "maximize"])
@pytest.mark.parametrize("options", OPTION_SETS)
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


# -- an optimizer this process did not write: rebuilt from the trials ---------------------------


@pytest.fixture
def new_kernel(monkeypatch: pytest.MonkeyPatch) -> Callable[[], None]:
    """Forget which optimizers this process wrote and rebuilt, as a new kernel has."""

    def forget() -> None:
        monkeypatch.setattr(cmaes, "_WRITTEN", set())
        monkeypatch.setattr(cmaes, "_REBUILT", {})

    return forget


@pytest.fixture
def cma_log() -> Iterator[list[str]]:
    """The lines CMA-ES logs (Optuna's logger of its CMA-ES module), INFO and above."""
    lines: list[str] = []
    handler = logging.Handler(logging.INFO)
    handler.emit = lambda record: lines.append(record.getMessage())  # type: ignore[method-assign]
    logger, level = cmaes._logger, cmaes._logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield lines
    logger.removeHandler(handler)
    logger.setLevel(level)


def _study(options: dict[str, Any], direction: str = "minimize", **run: Any) -> optuna.Study:
    """A study CMA-ES ran in this process (trials one at a time unless ``at_once``)."""
    study = optuna.create_study(sampler=HistoryCmaEsSampler(seed=3, **options), direction=direction)
    _run(study, _objective, **{"at_once": 1, "n": 120, **run})
    return study


def _source(study: optuna.Study, prefix: str = "cma:") -> FrozenTrial:
    """The latest complete trial that stores an optimizer: the one a next suggestion restores."""
    return max(
        (t for t in study.trials if t.state == TrialState.COMPLETE and _stored(t, prefix)),
        key=lambda t: t.number,
    )


def _stored(t: FrozenTrial, prefix: str) -> str:
    parts = {k: v for k, v in t.system_attrs.items() if k.startswith(f"{prefix}optimizer:")}
    return "".join(parts[f"{prefix}optimizer:{i}"] for i in range(len(parts)))


def _reference(study: optuna.Study, prefix: str = "cma:") -> Any:
    """The optimizer Optuna restores next (this test's process wrote it: safe to unpickle)."""
    return pickle.loads(bytes.fromhex(_stored(_source(study, prefix), prefix)))


def _copy(
    study: optuna.Study,
    sampler: optuna.samplers.BaseSampler,
    attrs: Callable[[FrozenTrial], dict[str, Any] | None] = lambda t: t.system_attrs,
) -> optuna.Study:
    """A new study with ``study``'s trials, their system attributes as ``attrs`` gives them (a
    trial it gives None for is left out), as another storage or an imported archive has them."""
    copied = optuna.create_study(sampler=sampler, direction=study.direction)
    for t in study.get_trials(deepcopy=True):
        kept = attrs(t)
        if kept is not None:
            t.system_attrs = kept
            copied.add_trial(t)
    return copied


def _assert_same_state(rebuilt: Any, reference: Any) -> None:
    """The same distribution, bit for bit: the same updates from the same solutions, each
    optimizer as its pickle restores it."""
    assert rebuilt is not None
    assert type(rebuilt) is type(reference)
    assert rebuilt.generation == reference.generation
    ours, theirs = rebuilt.__dict__.get("_cma", rebuilt), reference.__dict__.get("_cma", reference)
    for name in ("_mean", "_sigma", "_C", "_p_sigma", "_pc"):
        np.testing.assert_array_equal(ours.__dict__[name], theirs.__dict__[name])
    if "_A" in reference.__dict__:  # CMA-ES with margin's correction
        np.testing.assert_array_equal(rebuilt._A, reference._A)


_PREFIX = {"use_separable_cma": "sepcma:", "with_margin": "cmawm:"}
_DEPRECATED = pytest.mark.filterwarnings("ignore::FutureWarning")  # Optuna 5's, on the option


@pytest.mark.parametrize("direction", ["minimize", "maximize"])
@pytest.mark.parametrize(
    "options",
    [
        *OPTION_SETS,
        {"lr_adapt": True},
        pytest.param({"sigma0": 0.5}, marks=_DEPRECATED),
        pytest.param({"restart_strategy": "ipop"}, marks=_DEPRECATED),  # Optuna 5 ignores it
    ],
)
def test_an_optimizer_this_process_did_not_write_is_rebuilt_from_the_trials(
    options: dict[str, Any], direction: str, new_kernel: Callable[[], None], cma_log: list[str]
) -> None:
    study = _study(options, direction)
    prefix = next((_PREFIX[k] for k in options if k in _PREFIX), "cma:")
    reference = _reference(study, prefix)
    assert reference.generation >= 10
    new_kernel()
    rebuilt = HistoryCmaEsSampler(seed=3, **options).current_optimizer(study)
    _assert_same_state(rebuilt, reference)
    assert f"CMA-ES's state rebuilt from {reference.generation} generations of trials" in cma_log


def test_an_archive_without_optimizers_is_rebuilt_to_its_latest_generation(
    new_kernel: Callable[[], None],
) -> None:
    study = _study({})
    reference = _reference(study)
    new_kernel()
    imported = _copy(
        study,
        HistoryCmaEsSampler(seed=3),
        lambda t: {k: v for k, v in t.system_attrs.items() if ":optimizer:" not in k},
    )
    rebuilt = imported.sampler.current_optimizer(imported)  # type: ignore[attr-defined]
    _assert_same_state(rebuilt, reference)


@pytest.mark.parametrize("options", [{}, {"with_margin": True}])
def test_a_resumed_run_continues_from_the_rebuilt_state(
    options: dict[str, Any], new_kernel: Callable[[], None]
) -> None:
    """A new kernel's run suggests what Optuna suggests restoring the stored optimizer: the
    next generations are drawn around the rebuilt mean, not the first one."""
    study = optuna.create_study(sampler=HistoryCmaEsSampler(seed=1, **options))
    study.optimize(_one, n_trials=60)
    optunas = _copy(study, optuna.samplers.CmaEsSampler(seed=5, **options))
    optunas.optimize(_one, n_trials=40)
    new_kernel()
    ours = _copy(study, HistoryCmaEsSampler(seed=5, **options))
    ours.optimize(_one, n_trials=40)
    resumed = [t.params["x"] for t in ours.trials[60:]]
    assert resumed == [t.params["x"] for t in optunas.trials[60:]]
    # the first mean is 0 and its sigma 20 / 6; the rebuilt one draws around the optimum, 3
    assert max(abs(x - 3) for x in resumed[:8]) < 1


def test_a_rebuild_is_kept_for_the_process_and_what_it_tells_is_trusted(
    new_kernel: Callable[[], None], monkeypatch: pytest.MonkeyPatch
) -> None:
    study = _study({}, n=60)
    new_kernel()
    replays = []
    replay = HistoryCmaEsSampler._replay
    monkeypatch.setattr(
        HistoryCmaEsSampler, "_replay", lambda self, *a: replays.append(1) or replay(self, *a)
    )
    for seed in (1, 2):  # a resumed run in the same kernel makes its sampler again
        HistoryCmaEsSampler(seed=seed).current_optimizer(study)
    assert len(replays) == 1
    study.sampler = HistoryCmaEsSampler(seed=3)
    study.optimize(_objective, n_trials=30)
    source = _stored(_source(study), "cma:")
    assert cmaes.hashlib.sha256(source.encode()).hexdigest() in cmaes._WRITTEN
    assert len(replays) == 1


class _Touch:
    """Unpickling this creates a file: what a crafted optimizer could do."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> Any:
        return (pathlib.Path.touch, (pathlib.Path(self.path),))


def test_a_planted_optimizer_is_never_unpickled_and_the_trials_still_replay(
    tmp_path: pathlib.Path, new_kernel: Callable[[], None]
) -> None:
    study = _study({})
    reference = _reference(study)
    marker = tmp_path / "pwned"
    evil = pickle.dumps(_Touch(str(marker))).hex()
    new_kernel()
    planted = _copy(
        study,
        HistoryCmaEsSampler(seed=3),
        lambda t: {
            k: (evil if k == "cma:optimizer:0" else v)
            for k, v in t.system_attrs.items()
            if not k.startswith("cma:optimizer:") or k == "cma:optimizer:0"
        },
    )
    _assert_same_state(planted.sampler.current_optimizer(planted), reference)  # type: ignore[attr-defined]
    planted.optimize(_objective, n_trials=20)
    assert not marker.exists()


def test_trials_run_at_once_replay_the_first_of_each_generation(
    new_kernel: Callable[[], None], cma_log: list[str]
) -> None:
    """Which trials of a crowded generation Optuna told depends on which had finished by then;
    the rebuilt optimizer reaches the same generation, over the first by number."""
    study = _study({}, at_once=8)
    reference = _reference(study)
    new_kernel()
    rebuilt = HistoryCmaEsSampler(seed=3).current_optimizer(study)
    assert rebuilt.generation == reference.generation
    assert any("held more than their population" in line for line in cma_log)


def _generation(t: FrozenTrial) -> Any:
    return t.system_attrs.get("cma:generation")


@pytest.mark.parametrize(
    ("options", "attrs", "logged"),
    [
        (
            {"source_trials": "the study's"},
            lambda t: t.system_attrs,
            "a warm-started one cannot be rebuilt from the trials",
        ),
        (  # a generation short of its population
            {},
            lambda t: None if _generation(t) == 2 and t.number % 2 else t.system_attrs,
            "generation 2 has",
        ),
        (  # Optuna 4 stored each trial's population
            {},
            lambda t: {**t.system_attrs, "cma:popsize": 5},
            "drawn by a population of 5, not 7",
        ),
        (  # generations that cannot hold a stored optimizer: tampered with
            {},
            lambda t: {**t.system_attrs, "cma:generation": 0},
            "the stored optimizer's generation is 0",
        ),
        (  # an archive keeps no x_for_tell
            {"with_margin": True},
            lambda t: {k: v for k, v in t.system_attrs.items() if k != "x_for_tell"},
            "its trials do not replay: KeyError('x_for_tell')",
        ),
    ],
)
def test_what_cannot_be_replayed_starts_afresh_with_a_logged_line(
    options: dict[str, Any],
    attrs: Callable[[FrozenTrial], dict[str, Any] | None],
    logged: str,
    new_kernel: Callable[[], None],
    cma_log: list[str],
) -> None:
    study = _study({k: v for k, v in options.items() if k != "source_trials"})
    new_kernel()
    if "source_trials" in options:
        options = {**options, "source_trials": study.trials}
    copied = _copy(study, HistoryCmaEsSampler(seed=3, **options), attrs)
    assert copied.sampler.current_optimizer(copied) is None  # type: ignore[attr-defined]
    assert any(logged in line for line in cma_log), cma_log
    if "with_margin" not in options:  # without x_for_tell it cannot tell afresh either
        copied.optimize(_objective, n_trials=10)  # CMA-ES goes on, afresh
        assert len(copied.trials) > 100

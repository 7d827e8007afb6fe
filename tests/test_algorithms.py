"""Every sampler and pruner by name, their options, and how ``auto`` chooses."""

from __future__ import annotations

import importlib

import optuna
import pytest
from optuna.trial import TrialState

import hpo_nb
from hpo_nb import HpoError, RunState
from hpo_nb.search.algorithms import (
    PRUNERS,
    SAMPLERS,
    Context,
    make_pruner,
    make_sampler,
    parse_options,
)
from hpo_nb.search.auto import NEEDS, SAMPLER_KEY, AutoSampler

SPACE = {
    "x": {"type": "float", "low": -3.0, "high": 3.0},
    "n": {"type": "int", "low": 1, "high": 4},
}


def bowl(trial):
    x = trial.suggest_float("x", -3, 3)
    n = trial.suggest_int("n", 1, 4)
    for step in range(4):
        trial.report((x - 1) ** 2 + n + 1 / (step + 1), step)
        if trial.should_prune():
            raise optuna.TrialPruned()
    return (x - 1) ** 2 + n


def two_goals(trial):
    x = trial.suggest_float("x", 0, 1)
    return x, (1 - x) ** 2


SAMPLER_OPTIONS = {
    "gp": {"n_startup_trials": 3},
    "cmaes": {"n_startup_trials": 2},
    "nsga2": {"population_size": 4},
    "nsga3": {"population_size": 4},
    "grid": {"points": 3},
    "qmc": {"qmc_type": "halton"},
    "tpe": {"n_startup_trials": 3},
}


@pytest.mark.parametrize("name", list(SAMPLERS))
def test_every_sampler_runs_a_seeded_study(name, db):
    run = hpo_nb.run(
        bowl,
        n_trials=10,
        storage=db,
        sampler=name,
        seed=0,
        space=SPACE,
        sampler_options=SAMPLER_OPTIONS.get(name),
        wait=True,
    )
    assert run.state in (RunState.COMPLETED,), run.reason
    trials = optuna.load_study(study_name="bowl", storage=db).trials
    assert {t.state for t in trials} <= {TrialState.COMPLETE, TrialState.PRUNED}
    assert all(-3 <= t.params["x"] <= 3 and 1 <= t.params["n"] <= 4 for t in trials)
    if name == "grid":  # 3 x-values x 4 n-values, and then the grid is done
        assert len(trials) == 10 and len({(t.params["x"], t.params["n"]) for t in trials}) == 10


def test_grid_stops_when_exhausted(db):
    run = hpo_nb.run(
        bowl,
        n_trials=50,
        storage=db,
        sampler="grid",
        sampler_options={"points": 2},
        space=SPACE,
        wait=True,
    )
    trials = optuna.load_study(study_name="bowl", storage=db).trials
    assert run.state == RunState.COMPLETED and "every point of its grid" in run.reason
    assert 8 <= len(trials) < 50
    assert len({(t.params["x"], t.params["n"]) for t in trials}) == 8


@pytest.mark.parametrize("name", ["nsga2", "nsga3", "tpe", "auto", "random"])
def test_multi_objective_samplers(name, db):
    hpo_nb.run(
        two_goals,
        n_trials=8,
        storage=db,
        sampler=name,
        seed=1,
        sampler_options={"population_size": 4} if name.startswith("nsga") else None,
        directions=["minimize", "minimize"],
        wait=True,
    )
    trials = optuna.load_study(study_name="two_goals", storage=db).trials
    assert len(trials) == 8 and all(len(t.values) == 2 for t in trials)


PRUNER_OPTIONS = {
    "percentile": {"percentile": 50.0},
    "threshold": {"upper": 4.5},
    "patient": {"patience": 1},
    "hyperband": {"max_resource": 4},
    "sha": {"min_resource": 1},
}


@pytest.mark.parametrize("name", list(PRUNERS))
def test_every_pruner_runs_a_seeded_study(name, db):
    run = hpo_nb.run(
        bowl,
        n_trials=12,
        storage=db,
        sampler="random",
        seed=3,
        pruner=name,
        pruner_options=PRUNER_OPTIONS.get(name),
        wait=True,
    )
    assert run.state == RunState.COMPLETED
    trials = optuna.load_study(study_name="bowl", storage=db).trials
    states = {t.state for t in trials}
    assert states <= {TrialState.COMPLETE, TrialState.PRUNED}
    if name == "none":
        assert states == {TrialState.COMPLETE}
    if name == "threshold":  # (x-1)^2 + n + 1 > 4.5 is pruned at its first report
        for t in trials:
            assert (t.state == TrialState.PRUNED) == (t.intermediate_values[0] > 4.5)


def test_seeded_serial_runs_are_reproducible(db, tmp_path):
    params = []
    for i in range(2):
        storage = f"sqlite:///{tmp_path / f'r{i}.db'}"
        hpo_nb.run(
            bowl,
            n_trials=12,
            storage=storage,
            sampler="tpe",
            seed=7,
            workers=1,
            pruner="none",
            wait=True,
        )
        params.append(
            [t.params for t in optuna.load_study(study_name="bowl", storage=storage).trials]
        )
    assert params[0] == params[1]
    hpo_nb.run(bowl, n_trials=2, storage=db, workers=2, wait=True)  # back to the usual size


def test_options_are_parsed_and_checked():
    assert parse_options(["a=5", "b=0.5", "c=true", "d=None", "e=halton", "f=[1, 2]"]) == {
        "a": 5,
        "b": 0.5,
        "c": True,
        "d": None,
        "e": "halton",
        "f": [1, 2],
    }
    with pytest.raises(HpoError, match="is not key=value"):
        parse_options(["n_startup_trials"])
    with pytest.raises(HpoError, match=r"unknown option 'bogus' for sampler tpe: valid options"):
        make_sampler("tpe", options={"bogus": 1})
    with pytest.raises(HpoError, match="pass the seed with --seed"):
        make_sampler("random", options={"seed": 1})
    with pytest.raises(HpoError, match="sampler qmc: "):
        make_sampler("qmc", options={"qmc_type": "nonsense"})
    with pytest.raises(HpoError, match="grid sampler needs a search space"):
        make_sampler("grid")
    with pytest.raises(HpoError, match="unknown option 'x' for pruner median"):
        make_pruner("median", {"x": 1})
    with pytest.raises(HpoError, match="threshold needs"):
        make_pruner("threshold")
    with pytest.raises(HpoError, match="pruner percentile: "):
        make_pruner("percentile", {"percentile": 150})
    with pytest.raises(HpoError, match="unknown pruner 'early'"):
        make_pruner("early")


def test_explicit_grid_values():
    sampler = make_sampler("grid", options={"search_space": {"x": [0.0, 1.0]}})
    study = optuna.create_study(sampler=sampler)
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=5)
    assert sorted(t.params["x"] for t in study.trials) == [0.0, 1.0]


# -- auto --------------------------------------------------------------------------------------
def choices(study):
    return [t.system_attrs.get(SAMPLER_KEY) for t in study.trials]


def auto_study(directions=("minimize",), **options):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = AutoSampler(seed=0, context=Context(tuple(directions)), **options)
    return optuna.create_study(sampler=sampler, directions=list(directions)), sampler


def numeric(trial):
    return sum(trial.suggest_float(f"x{i}", -2, 2) ** 2 for i in range(3))


def categorical(trial):
    kind = trial.suggest_categorical("kind", ["a", "b"])
    return trial.suggest_float("x", 0, 1) + (kind == "a")


def conditional(trial):
    x = trial.suggest_float("x", 0, 1)
    if x > 0.5:
        return x + trial.suggest_float("y", 0, 1)
    return x


def test_auto_uses_gp_for_small_numeric_studies_then_cmaes():
    study, sampler = auto_study(gp_max_trials=6)
    study.optimize(numeric, n_trials=10)
    assert choices(study) == ["random"] + ["gp"] * 5 + ["cmaes"] * 4
    assert sampler.choice == "cmaes" and "gp would grow too slow" in sampler.reason


def test_auto_uses_tpe_for_conditional_spaces():
    study, sampler = auto_study()
    study.optimize(conditional, n_trials=12)
    assert sampler.choice == "tpe" and sampler.reason == "conditional parameters"
    assert choices(study)[-1] == "tpe"
    assert sampler._sampler._group  # TPE's decomposition of a conditional space


def test_auto_uses_gp_for_categorical_spaces_then_tpe_not_cmaes():
    study, sampler = auto_study(gp_max_trials=6)
    study.optimize(categorical, n_trials=10)
    assert choices(study) == ["random"] + ["gp"] * 5 + ["tpe"] * 4
    assert sampler.choice == "tpe" and sampler.reason.startswith("mixed space, 6 complete")


def test_auto_leaves_gp_when_a_suggestion_is_too_slow():
    for module in NEEDS["gp"] + NEEDS["cmaes"]:  # the decision, not the loading (below)
        importlib.import_module(module)
    sampler = AutoSampler(context=Context(("minimize",)), gp_max_seconds=0.0)
    study = optuna.create_study(sampler=sampler)
    study.optimize(numeric, n_trials=4)
    assert choices(study)[:2] == ["random", "gp"] and choices(study)[-1] == "cmaes"
    assert "too slow here" in sampler.reason


def test_auto_loads_an_algorithm_in_the_background_and_samples_meanwhile(tmp_path, monkeypatch):
    """Unseeded, a switch to an algorithm whose modules are not loaded yet does not stall the
    trials: they go on with the current algorithm until the loading thread is done."""
    (tmp_path / "slow_to_load.py").write_text("import time\ntime.sleep(0.5)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(NEEDS, "gp", ("slow_to_load",))
    sampler = AutoSampler(context=Context(("minimize",)))
    study = optuna.create_study(sampler=sampler)
    study.optimize(numeric, n_trials=3)
    assert choices(study) == ["random"] * 3
    assert sampler.reason.startswith("loading gp (numeric space")
    sampler._loading["gp"].join()
    study.optimize(numeric, n_trials=1)
    assert choices(study)[-1] == "gp"


def test_auto_without_pytorch_uses_tpe_for_numeric_spaces():
    study, sampler = auto_study()
    sampler._gp_available = False
    study.optimize(numeric, n_trials=4)
    assert choices(study) == ["random", "tpe", "tpe", "tpe"]
    assert "needs PyTorch" in sampler.reason


def test_auto_avoids_gp_with_many_trials_at_once():
    study, sampler = auto_study(gp_max_concurrency=2)
    study.optimize(numeric, n_trials=1)
    for _ in range(3):
        trial = study.ask()
        numeric(trial)  # asked, not told: running
    assert sampler.choice == "cmaes" and "trials at once" in sampler.reason


def test_auto_works_out_cma_es_warm_start_once_while_its_first_trials_run(monkeypatch):
    """Until one of its own trials completes, Optuna's CMA-ES would warm-start again from every
    source trial for each new trial; auto's does it once, and each trial still gets its own
    sample."""
    starts = []
    original = optuna.samplers.CmaEsSampler._init_optimizer
    monkeypatch.setattr(
        optuna.samplers.CmaEsSampler,
        "_init_optimizer",
        lambda self, *args: starts.append(1) or original(self, *args),
    )
    study, sampler = auto_study(gp_max_concurrency=2)
    study.optimize(numeric, n_trials=12)  # GP, then CMA-ES warm-started from 12 trials
    asked = []
    for _ in range(8):  # asked, not told: none of CMA-ES's own trials completes
        trial = study.ask()
        numeric(trial)
        asked.append(trial.params)
    assert sampler.choice == "cmaes"
    assert len(starts) == 1
    assert len({tuple(p.values()) for p in asked[-5:]}) == 5


def test_auto_for_several_objectives():
    study, sampler = auto_study(("minimize", "minimize"), mo_switch=5)
    study.optimize(lambda t: (t.suggest_float("x", 0, 1), t.suggest_float("y", 0, 1)), 8)
    assert choices(study)[1:5] == ["tpe"] * 4 and choices(study)[-1] == "nsga2"
    study, sampler = auto_study(("minimize",) * 4, mo_switch=2)
    study.optimize(lambda t: tuple(t.suggest_float(f"x{i}", 0, 1) for i in range(4)), 4)
    assert sampler.choice == "nsga3"


def test_auto_reads_a_declarative_space_before_any_trial(db):
    run = hpo_nb.run(bowl, n_trials=6, storage=db, space=SPACE, seed=0, wait=True)
    assert run.progress.sampler.startswith("auto: gp (numeric space")
    categorical_space = {**SPACE, "k": ["a", "b"]}
    run = hpo_nb.run(bowl, n_trials=6, study="cat", storage=db, space=categorical_space, wait=True)
    assert run.progress.sampler.startswith("auto: gp (mixed space")
    conditional_space = {
        **categorical_space,
        "y": {"type": "float", "low": 0, "high": 1, "when": {"k": "a"}},
    }
    run = hpo_nb.run(bowl, n_trials=6, study="if", storage=db, space=conditional_space, wait=True)
    assert run.progress.sampler == "auto: tpe (conditional parameters)"


def test_auto_sees_the_parameters_of_a_trial_that_finishes_after_later_ones():
    study, sampler = auto_study()
    late = study.ask()  # trial 0: the only one with "y"
    late.suggest_float("x", 0, 1)
    late.suggest_float("y", 0, 1)
    for _ in range(3):
        trial = study.ask()
        trial.suggest_float("x", 0, 1)
        study.tell(trial, 1.0)
    assert sampler.reason != "conditional parameters"
    study.tell(late, 1.0)
    study.ask()
    assert sampler.choice == "tpe" and sampler.reason == "conditional parameters"

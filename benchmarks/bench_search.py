"""Search efficiency against random search: trials each sampler needs to reach random's result.

Tasks: COCO/BBOB functions from ``coco-experiment`` (a task is one function in one dimension; its
runs are instances x seeds, COCO's own notion of repetitions) and tuning tasks on datasets that
ship with scikit-learn (cross-validated loss with fixed folds and models, so deterministic;
nothing is cached): HistGradientBoosting and an RBF SVC on breast_cancer (numeric), kernel ridge
on diabetes and a scaler + logistic regression pipeline on breast_cancer (with categorical
parameters). Samplers are built by hpo_nb's own factory
(``make_sampler(name, seed=s, context=Context(n_trials=N))``) and run in memory with
``optuna.create_study`` + ``study.optimize``; hyperopt's TPE (``fmin`` with ``tpe.suggest``, its
defaults) is the outside peer, on the equivalent space. ``qmc`` is Sobol scrambled with the
run's seed; ``qmc-unscrambled`` is Optuna's default, which ignores the seed and draws the same
points on every run (the first at every lower bound, the second at every middle): one sequence,
reported but not a sample of runs, so not held against ``auto``.

The metric, per run: random search (hpo_nb's ``random``, seed s) with budget N ends with best
value r*. A method run with the same seed on the same problem reaches r* first at trial k
(1-based: its best-so-far <= r*) and scores N / k; a run stops as soon as it reaches r* (later
trials cannot change k), and a run that never reaches it within N trials scores 0, shown as
``<1``. Per task, the figure is the median over runs; per suite, the median over tasks. All
medians are lower medians (an observed value, and conservative when the count is even). A second
random search (seed s + 10000) against the first is the control: its ratio is about 1.
``auto`` is "within 10%" of the best single Optuna sampler on a task when its median ratio is
at least 0.9 x the best one's; a one-sided sign test over the paired runs (same problem and
seed, trials to reach r*) says whether a shortfall is beyond noise.

"Optimizer seconds" per trial are the wall time between two objective evaluations (ask, sample,
suggest, tell): the time a worker would wait for its next trial. A cost run gives each method one
full history (no early stop) on one BBOB problem and reports them by stretch of the history, with
``auto`` also unseeded, where its cost guard applies.

Each process runs on one thread (BLAS, OpenMP and PyTorch pinned to one thread); the problems
(a scikit-learn task's seeds in chunks of ten, the longest jobs, first) are shared out to
``--jobs`` processes (one per CPU); the cost run has the machine to itself. Every method runs
on every problem and seed: 30 runs per BBOB task, 60 per scikit-learn task. The best of five
samplers' medians is partly the luckiest one, and ``auto`` is held against it: at 30 runs on
the gradient-boosting task, Optuna's GP and ``auto`` set up to draw the same way as it (the
same algorithm, other random streams) scored 2.63 and 2.94, 12% apart. ``--gp-instances``
limits ``gp``, whose cost grows with the history, to some BBOB instances. ``nsga3`` is left out
by default (for one objective it draws nsga2's trials).

    python benchmarks/bench_search.py [--budget 200] [--ml-budget 100] [--seeds 10]
        [--ml-seeds 60] [--jobs CPUs] [--functions 1,8,10,15,21] [--dims 2,5,10] [--instances 1,2,3]
        [--gp-instances 1,2,3] [--ml-tasks hgb,svc,kernel_ridge,logreg] [--cost-trials 300]
        [--cost-problem 15,10]
        [--methods random,tpe,gp,cmaes,qmc,nsga2,auto,hyperopt,qmc-unscrambled]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import dataclasses
import importlib.util
import itertools
import logging
import math
import multiprocessing
import os
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import optuna

from hpo_nb.search.algorithms import make_sampler
from hpo_nb.search.context import Context

# nsga3 is left out by default: for one objective it draws the same trials as nsga2.
METHODS = ("random", "tpe", "gp", "cmaes", "qmc", "nsga2", "auto", "hyperopt", "qmc-unscrambled")
# The single Optuna samplers auto is held against (random search is the baseline and control).
SINGLE = ("tpe", "gp", "cmaes", "qmc", "nsga2", "nsga3")
# A method's sampler: hpo_nb's name and options. ``qmc`` is scrambled, so that each seed draws
# its own sequence; Optuna's default (``scramble=False``) ignores the seed: the same points on
# every run, so its "median over runs" is one run, shown apart and not held against auto.
SAMPLER_OF: dict[str, tuple[str, dict[str, Any]]] = {
    "qmc": ("qmc", {"scramble": True}),
    "qmc-unscrambled": ("qmc", {}),
}
CONTROL_SEED = 10_000
UNSEEDED = "auto (no seed)"
BAD_VALUE = 1e10  # stands for a non-finite loss, for both Optuna and hyperopt
TARGETS = {"bbob": 7.0, "sklearn": 2.5}
SPEC = 1.5
WITHIN = 0.9  # auto's task median >= 0.9 x the best single Optuna sampler's
ML_CHUNK = 10  # a scikit-learn task's seeds per job
MAX_SUGGEST_SECONDS = 1.0  # auto's gp_max_seconds: its slowest trial must stay under this

SMOKE = [
    "--budget=12",
    "--ml-budget=5",
    "--seeds=1",
    "--ml-seeds=1",
    "--jobs=2",
    "--functions=1",
    "--dims=2",
    "--instances=1",
    "--ml-tasks=kernel_ridge",
    "--cost-trials=12",
    "--cost-problem=1,2",
]


# -- tasks -----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Param:
    """One parameter: kind is 'float', 'log', 'int' or 'cat'."""

    name: str
    kind: str
    low: float = 0.0
    high: float = 1.0
    choices: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class Problem:
    """One objective: a BBOB instance, or a scikit-learn task."""

    id: str
    task: str
    suite: str  # "bbob" or "sklearn"
    params: tuple[Param, ...]
    evaluate: Callable[[dict[str, Any]], float]
    budget: int
    instance: int = 0  # BBOB's instance; 0 for a scikit-learn task


def bbob_problems(
    functions: Sequence[int], dims: Sequence[int], instances: Sequence[int], budget: int
) -> list[Problem]:
    """One Problem per BBOB function, dimension and instance."""
    import cocoex

    cocoex.log_level("warning")
    options = (
        f"function_indices:{','.join(map(str, functions))} "
        f"dimensions:{','.join(map(str, dims))} "
        f"instance_indices:{','.join(map(str, instances))}"
    )
    suite = cocoex.Suite("bbob", "", options)
    problems = []
    for coco in (suite.get_problem(i) for i in range(len(suite))):
        bounds = zip(coco.lower_bounds, coco.upper_bounds, strict=True)
        params = tuple(
            Param(f"x{i}", "float", float(lo), float(hi)) for i, (lo, hi) in enumerate(bounds)
        )
        task = f"f{coco.id_function}-d{coco.dimension}"
        evaluate = _Coco(suite, coco)
        problems.append(Problem(coco.id, task, "bbob", params, evaluate, budget, coco.id_instance))
    return problems


@dataclasses.dataclass(frozen=True)
class _Coco:
    """A BBOB problem as a function of the parameters; it holds the suite that owns it."""

    suite: Any
    problem: Any

    def __call__(self, p: dict[str, Any]) -> float:
        return float(self.problem(np.array([p[f"x{i}"] for i in range(len(p))])))


def sklearn_problems(names: Sequence[str], budget: int) -> list[Problem]:
    """The scikit-learn tuning tasks asked for (see ML_TASKS)."""
    return [Problem(n, n, "sklearn", *ML_TASKS[n](), budget) for n in names]


def _hgb_breast_cancer() -> tuple[tuple[Param, ...], Callable[[dict[str, Any]], float]]:
    """HistGradientBoosting (15 rounds) on breast_cancer: 3-fold log-loss, numeric 4-D."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    x, y = load_breast_cancer(return_X_y=True)
    folds = StratifiedKFold(3, shuffle=True, random_state=0)
    params = (
        Param("learning_rate", "log", 0.01, 1.0),
        Param("max_leaf_nodes", "int", 2, 64),
        Param("min_samples_leaf", "int", 1, 100),
        Param("l2_regularization", "log", 1e-4, 10.0),
    )

    def evaluate(p: dict[str, Any]) -> float:
        model = HistGradientBoostingClassifier(
            max_iter=15, early_stopping=False, random_state=0, **p
        )
        return -cross_val_score(model, x, y, cv=folds, scoring="neg_log_loss").mean()

    return params, evaluate


def _svc_breast_cancer() -> tuple[tuple[Param, ...], Callable[[dict[str, Any]], float]]:
    """RBF SVC on standardized breast_cancer: 3-fold 1 - ROC AUC, numeric 2-D (log C, gamma)."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    x, y = load_breast_cancer(return_X_y=True)
    x = StandardScaler().fit_transform(x)
    folds = StratifiedKFold(3, shuffle=True, random_state=0)
    params = (Param("C", "log", 1e-2, 1e4), Param("gamma", "log", 1e-5, 1.0))

    def evaluate(p: dict[str, Any]) -> float:
        model = SVC(kernel="rbf", **p)
        return 1 - cross_val_score(model, x, y, cv=folds, scoring="roc_auc").mean()

    return params, evaluate


def _kernel_ridge_diabetes() -> tuple[tuple[Param, ...], Callable[[dict[str, Any]], float]]:
    """Kernel ridge on standardized diabetes: 3-fold MSE, mixed (kernel is categorical)."""
    from sklearn.datasets import load_diabetes
    from sklearn.kernel_ridge import KernelRidge
    from sklearn.model_selection import KFold, cross_val_score
    from sklearn.preprocessing import StandardScaler

    x, y = load_diabetes(return_X_y=True)
    x = StandardScaler().fit_transform(x)
    y = (y - y.mean()) / y.std()
    folds = KFold(3, shuffle=True, random_state=0)
    params = (
        Param("kernel", "cat", choices=("rbf", "laplacian", "polynomial")),
        Param("alpha", "log", 1e-4, 10.0),
        Param("gamma", "log", 1e-4, 10.0),
        Param("degree", "int", 2, 4),
    )

    def evaluate(p: dict[str, Any]) -> float:
        model = KernelRidge(coef0=1.0, **p)
        return -cross_val_score(model, x, y, cv=folds, scoring="neg_mean_squared_error").mean()

    return params, evaluate


def _logreg_breast_cancer() -> tuple[tuple[Param, ...], Callable[[dict[str, Any]], float]]:
    """Scaler + logistic regression on breast_cancer: 3-fold log-loss, mixed (three categorical)."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import MinMaxScaler, RobustScaler, StandardScaler

    x, y = load_breast_cancer(return_X_y=True)
    folds = StratifiedKFold(3, shuffle=True, random_state=0)
    scalers = {"standard": StandardScaler, "minmax": MinMaxScaler, "robust": RobustScaler}
    params = (
        Param("scaler", "cat", choices=tuple(scalers)),
        Param("penalty", "cat", choices=("l1", "l2")),
        Param("class_weight", "cat", choices=("none", "balanced")),
        Param("C", "log", 1e-4, 1e4),
    )

    def evaluate(p: dict[str, Any]) -> float:
        weight = None if p["class_weight"] == "none" else p["class_weight"]
        model = make_pipeline(
            scalers[p["scaler"]](),
            LogisticRegression(
                C=p["C"],
                l1_ratio=float(p["penalty"] == "l1"),
                class_weight=weight,
                solver="liblinear",
            ),
        )
        return -cross_val_score(model, x, y, cv=folds, scoring="neg_log_loss").mean()

    return params, evaluate


ML_TASKS = {
    "hgb": _hgb_breast_cancer,
    "svc": _svc_breast_cancer,
    "kernel_ridge": _kernel_ridge_diabetes,
    "logreg": _logreg_breast_cancer,
}


# -- runs ------------------------------------------------------------------------------------


@dataclasses.dataclass
class Trace:
    """One run: the objective values in order and the optimizer seconds before each."""

    values: list[float] = dataclasses.field(default_factory=list)
    waits: list[float] = dataclasses.field(default_factory=list)
    _last: float = dataclasses.field(default_factory=time.perf_counter)

    def timed(self, evaluate: Callable[[dict[str, Any]], float]) -> Callable[..., float]:
        def objective(params: dict[str, Any]) -> float:
            start = time.perf_counter()
            self.waits.append(start - self._last)
            value = evaluate(params)
            value = value if math.isfinite(value) else BAD_VALUE
            self.values.append(value)
            self._last = time.perf_counter()
            return value

        return objective

    def reached_at(self, target: float) -> int | None:
        """The first trial (1-based) whose best-so-far is <= target."""
        return next((i + 1 for i, v in enumerate(self.values) if v <= target), None)


def run_optuna(name: str, problem: Problem, seed: int | None, budget: int, target: float) -> Trace:
    """hpo_nb's sampler ``name`` until it reaches ``target`` (-inf: the full budget)."""
    name, options = SAMPLER_OF.get(name, (name, {}))
    sampler = make_sampler(name, seed=seed, options=options, context=Context(n_trials=budget))
    study = optuna.create_study(sampler=sampler, direction="minimize")
    trace = Trace()
    evaluate = trace.timed(problem.evaluate)

    def objective(trial: optuna.Trial) -> float:
        return evaluate({p.name: _suggest(trial, p) for p in problem.params})

    def stop(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if trial.value is not None and trial.value <= target:
            study.stop()

    study.optimize(objective, n_trials=budget, callbacks=[stop])
    return trace


def _suggest(trial: optuna.Trial, p: Param) -> Any:
    if p.kind == "cat":
        return trial.suggest_categorical(p.name, p.choices)
    if p.kind == "int":
        return trial.suggest_int(p.name, int(p.low), int(p.high))
    return trial.suggest_float(p.name, p.low, p.high, log=p.kind == "log")


def run_hyperopt(problem: Problem, seed: int, budget: int, target: float) -> Trace:
    """hyperopt's TPE (``fmin``, ``tpe.suggest``) until it reaches ``target``."""
    from hyperopt import STATUS_OK, Trials, fmin, hp, tpe

    space = {p.name: _hyperopt_space(hp, p) for p in problem.params}
    trace = Trace()
    evaluate = trace.timed(problem.evaluate)
    ints = [p.name for p in problem.params if p.kind == "int"]

    def objective(params: dict[str, Any]) -> dict[str, Any]:
        params = {**params, **{n: int(params[n]) for n in ints}}
        return {"loss": evaluate(params), "status": STATUS_OK}

    def stop(trials: Trials, *args: Any) -> tuple[bool, tuple[Any, ...]]:
        return min(trace.values, default=math.inf) <= target, args

    fmin(
        objective,
        space,
        algo=tpe.suggest,
        max_evals=budget,
        trials=Trials(),
        rstate=np.random.default_rng(seed),
        early_stop_fn=stop,
        show_progressbar=False,
    )
    return trace


def _hyperopt_space(hp: Any, p: Param) -> Any:
    if p.kind == "cat":
        return hp.choice(p.name, list(p.choices))
    if p.kind == "int":
        return hp.uniformint(p.name, int(p.low), int(p.high))
    if p.kind == "log":
        return hp.loguniform(p.name, math.log(p.low), math.log(p.high))
    return hp.uniform(p.name, p.low, p.high)


def run_method(method: str, problem: Problem, seed: int, target: float) -> Trace:
    if method == "hyperopt":
        return run_hyperopt(problem, seed, problem.budget, target)
    if method == "random":  # the control: a second random search
        return run_optuna("random", problem, seed + CONTROL_SEED, problem.budget, target)
    return run_optuna(method, problem, seed, problem.budget, target)


# -- the measurement -------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Result:
    """One method's run on one problem and seed, against random search with that seed."""

    method: str
    task: str
    suite: str
    run: str  # the problem and seed: runs of different methods pair on it
    budget: int
    k: int | None  # the first trial that reached random's result; None: not within budget
    waits: list[float]

    @property
    def ratio(self) -> float:
        """budget / k; 0 when random search's result was not reached."""
        return self.budget / self.k if self.k else 0.0


def measure(
    problems: Sequence[tuple[Problem, range]],
    methods: Sequence[str],
    gp_instances: Sequence[int] | None,
) -> list[Result]:
    """Every method on every problem for each of its seeds, against random search with the
    same seed; ``gp`` on BBOB only on ``gp_instances`` (None: on all)."""
    results = []
    for problem, seeds in problems:
        gp_skips = gp_instances is not None and problem.instance not in gp_instances
        skip = {"gp"} if problem.instance and gp_skips else set()
        seconds = {m: 0.0 for m in methods if m not in skip}
        for seed in seeds:
            baseline = run_optuna("random", problem, seed, problem.budget, -math.inf)
            target = min(baseline.values)
            for method in seconds:
                started = time.perf_counter()
                trace = run_method(method, problem, seed, target)
                seconds[method] += time.perf_counter() - started
                k = trace.reached_at(target)
                run = f"{problem.id}/{seed}"
                results.append(
                    Result(method, problem.task, problem.suite, run, problem.budget, k, trace.waits)
                )
        spent = " ".join(f"{m} {s:.1f}" for m, s in seconds.items())
        print(f"{problem.id}, seeds {seeds.start}-{seeds.stop - 1}: {spent} s", file=sys.stderr)
    return results


@dataclasses.dataclass(frozen=True)
class Spec:
    """How to build one Problem in another process (a Problem holds unpicklable objects), and
    the seeds to run it with there."""

    suite: str
    budget: int
    seeds: range
    task: str = ""  # a scikit-learn task's name
    bbob: tuple[int, int, int] = (0, 0, 0)  # BBOB's function, dimension, instance

    def build(self) -> Problem:
        if self.suite == "sklearn":
            return sklearn_problems([self.task], self.budget)[0]
        f, d, i = self.bbob
        return bbob_problems([f], [d], [i], self.budget)[0]


def specs(args: argparse.Namespace) -> list[Spec]:
    """Every problem asked for: the scikit-learn tasks first, their seeds in chunks of
    ``ML_CHUNK`` (the longest jobs: started first, and shared out), then BBOB's by dimension,
    function and instance (COCO's order)."""
    sklearn = [
        Spec("sklearn", args.ml_budget, range(start, min(start + ML_CHUNK, args.ml_seeds)), name)
        for name in args.ml_tasks
        for start in range(0, args.ml_seeds, ML_CHUNK)
    ]
    bbob = [
        Spec("bbob", args.budget, range(args.seeds), bbob=(f, d, i))
        for d in args.dims
        for f in args.functions
        for i in args.instances
    ]
    return sklearn + bbob


def measure_in_parallel(
    problems: Sequence[Spec], methods: Sequence[str], gp_instances: Sequence[int] | None, jobs: int
) -> list[Result]:
    """``measure`` on each problem in ``jobs`` processes, each on one thread. One process: in
    this one."""
    if jobs <= 1:
        return measure([(s.build(), s.seeds) for s in problems], methods, gp_instances)
    context = multiprocessing.get_context("spawn")  # no fork of a process that ran PyTorch
    warm = bool({"gp", "auto"} & set(methods))
    with concurrent.futures.ProcessPoolExecutor(
        jobs, mp_context=context, initializer=_start_worker, initargs=(warm,)
    ) as pool:
        chunks = pool.map(
            measure_one, problems, itertools.repeat(methods), itertools.repeat(gp_instances)
        )
        return [r for chunk in chunks for r in chunk]


def _start_worker(warm_up: bool) -> None:
    """A worker process on one thread, quiet, for its life; GP warmed up if asked."""
    pin_one_thread()
    if warm_up and _import_torch():
        warm_up_gp()


def measure_one(
    spec: Spec, methods: Sequence[str], gp_instances: Sequence[int] | None
) -> list[Result]:
    return measure([(spec.build(), spec.seeds)], methods, gp_instances)


def cost_run(problem: Problem, methods: Sequence[str], trials: int) -> dict[str, Trace]:
    """Each method's full history of ``trials`` (no early stop), for the optimizer seconds;
    ``auto`` also without a seed, where its cost guard runs."""
    out = {}
    unseeded = [UNSEEDED] if "auto" in methods else []
    for method in [*methods, *unseeded]:
        started = time.perf_counter()
        if method == "hyperopt":
            out[method] = run_hyperopt(problem, 0, trials, -math.inf)
        elif method == UNSEEDED:
            out[method] = run_optuna("auto", problem, None, trials, -math.inf)
        else:
            out[method] = run_optuna(method, problem, 0, trials, -math.inf)
        print(
            f"cost {method:>8s}  {trials} trials  {time.perf_counter() - started:6.1f} s",
            file=sys.stderr,
        )
    return out


# -- the report ------------------------------------------------------------------------------


def _median(values: Sequence[float]) -> float:
    return statistics.median_low(values) if values else math.nan


def _p(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else math.nan


def _ratio(x: float) -> str:
    return "-" if math.isnan(x) else "<1" if x < 1 else f"{x:.1f}"


def task_medians(results: Sequence[Result]) -> dict[tuple[str, str], float]:
    """(task, method) -> the median ratio over the task's runs."""
    by: dict[tuple[str, str], list[float]] = {}
    for r in results:
        by.setdefault((r.task, r.method), []).append(r.ratio)
    return {key: _median(v) for key, v in by.items()}


@dataclasses.dataclass(frozen=True)
class Comparison:
    """auto against the best single Optuna sampler on one task (best by median ratio)."""

    task: str
    best: str
    share: float  # auto's median ratio / the best's
    losses: int  # paired runs where the best reached random's result earlier than auto
    wins: int  # ... later than auto (ties are left out)

    @property
    def within(self) -> bool:
        """The target: auto's median ratio >= 0.9 x the best single sampler's."""
        return self.share >= WITHIN

    @property
    def p(self) -> float:
        """One-sided sign test over the paired runs: the chance of this many losses or more
        if auto and the best sampler were equally good."""
        n = self.losses + self.wins
        return sum(math.comb(n, i) for i in range(self.losses, n + 1)) / 2**n


def compare(results: Sequence[Result], task: str, singles: Sequence[str]) -> Comparison:
    medians = task_medians([r for r in results if r.task == task])
    best = max(singles, key=lambda m: medians[task, m])
    share = medians[task, "auto"] / medians[task, best] if medians[task, best] else 1.0
    runs = {(r.method, r.run): r.k or r.budget + 1 for r in results if r.task == task}
    pairs = [(k, runs[best, r]) for (m, r), k in runs.items() if m == "auto" and (best, r) in runs]
    losses = sum(auto > other for auto, other in pairs)
    wins = sum(auto < other for auto, other in pairs)
    return Comparison(task, best, share, losses, wins)


def _comparison(c: Comparison) -> str:
    text = f"{c.share:.2f} of {c.best}; loses {c.losses}, wins {c.wins} (p {c.p:.2f})"
    return text if c.within else f"**no**: {text}"


def summary_table(
    results: Sequence[Result], methods: Sequence[str], suites: list[str]
) -> list[str]:
    medians = task_medians(results)
    tasks = {s: sorted({r.task for r in results if r.suite == s}) for s in suites}
    head = "| method |" + "".join(
        f" {s} median | {s} quartiles | {s} not reached |" for s in suites
    )
    rows = [head + " s/trial p50 | p95 | max |", "| --- |" + " ---: |" * (3 * len(suites) + 3)]
    for m in methods:
        cells = []
        for s in suites:
            per_task = sorted(medians[t, m] for t in tasks[s])
            runs = [r for r in results if r.suite == s and r.method == m]
            missed = sum(r.ratio == 0 for r in runs) / max(1, len(runs))
            quartiles = f"{_ratio(_p(per_task, 0.25))} to {_ratio(_p(per_task, 0.75))}"
            cells.append(f" {_ratio(_median(per_task))} | {quartiles} | {missed:.0%} |")
        waits = [w for r in results if r.method == m for w in r.waits]
        seconds = f" {_p(waits, 0.5):.3f} | {_p(waits, 0.95):.3f} | {max(waits):.3f} |"
        label = "random (control)" if m == "random" else m
        rows.append(f"| {label} |" + "".join(cells) + seconds)
    return rows


def task_table(
    results: Sequence[Result], methods: Sequence[str], singles: Sequence[str]
) -> list[str]:
    medians = task_medians(results)
    tasks = sorted({(r.suite, r.task) for r in results}, key=_task_order)
    runs = {t: sum(r.task == t and r.method == "auto" for r in results) for _, t in tasks}
    rows = [
        "| task | runs (auto) | " + " | ".join(methods) + " | auto / best single Optuna sampler |",
        "| --- | ---: |" + " ---: |" * len(methods) + " --- |",
    ]
    for _, t in tasks:
        cells = " | ".join(_ratio(medians[t, m]) for m in methods)
        rows.append(f"| {t} | {runs[t]} | {cells} | {_comparison(compare(results, t, singles))} |")
    return rows


def _task_order(key: tuple[str, str]) -> tuple[Any, ...]:
    suite, task = key
    if suite == "bbob":
        f, d = task[1:].split("-d")
        return (0, int(d), int(f))
    return (1, 0, task)


def cost_table(traces: dict[str, Trace], chunk: int) -> list[str]:
    n = max(len(t.waits) for t in traces.values())
    spans = [(lo, min(n, lo + chunk)) for lo in range(0, n, chunk)]
    rows = [
        "| method | "
        + " | ".join(f"p95 s, trials {a + 1}-{b}" for a, b in spans)
        + " | max s | total s |",
        "| --- |" + " ---: |" * (len(spans) + 2),
    ]
    for m, t in traces.items():
        cells = " | ".join(f"{_p(t.waits[a:b], 0.95):.3f}" for a, b in spans)
        rows.append(f"| {m} | {cells} | {max(t.waits):.3f} | {sum(t.waits):.1f} |")
    return rows


def verdicts(
    results: Sequence[Result], cost: dict[str, Trace], singles: Sequence[str]
) -> list[str]:
    medians = task_medians(results)
    lines = []
    for suite, bar in TARGETS.items():
        tasks = sorted({r.task for r in results if r.suite == suite})
        if not tasks:
            continue
        value = _median([medians[t, "auto"] for t in tasks])
        met = "met" if value >= bar else "**missed**"
        spec = "met" if value >= SPEC else "**missed**"
        lines.append(
            f"- `auto` on {suite}: median {_ratio(value)}x over {len(tasks)} tasks; "
            f"target {bar}x {met}; spec {SPEC}x {spec}."
        )
    comparisons = [compare(results, t, singles) for t in sorted({r.task for r in results})]
    behind = [c for c in comparisons if not c.within]
    significant = [c.task for c in behind if c.p < 0.05]
    lines.append(
        f"- `auto` within 10% of the best single Optuna sampler (median ratio >= {WITHIN} x the "
        f"best's) on {len(comparisons) - len(behind)} of {len(comparisons)} tasks: "
        + ("met." if not behind else f"**missed** on {', '.join(c.task for c in behind)}")
        + (
            f"; behind beyond noise (sign test p < 0.05) on {', '.join(significant) or 'none'}."
            if behind
            else ""
        )
    )
    if "auto" in cost:
        worst = max(cost["auto"].waits)
        met = "met" if worst < MAX_SUGGEST_SECONDS else "**missed**"
        lines.append(
            f"- `auto` never stalled: its slowest trial in the cost run took {worst:.2f} s "
            f"(bar {MAX_SUGGEST_SECONDS:.0f} s, its gp_max_seconds): {met}."
        )
    return lines


# -- main ------------------------------------------------------------------------------------


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """BLAS/OpenMP and PyTorch on one thread; Optuna and hyperopt quiet; restored after."""
    with warnings.catch_warnings():
        undo = pin_one_thread()
        try:
            yield
        finally:
            undo()


def pin_one_thread() -> Callable[[], None]:
    """BLAS/OpenMP and PyTorch on one thread, warnings off, Optuna and hyperopt quiet; returns
    what undoes it (but the warnings filter: ``one_thread`` restores that)."""
    from threadpoolctl import threadpool_limits

    limits = threadpool_limits(1)
    torch = sys.modules.get("torch") or _import_torch()
    threads = torch.get_num_threads() if torch else None
    verbosity = optuna.logging.get_verbosity()
    hyperopt_log = logging.getLogger("hyperopt")
    level = hyperopt_log.level
    warnings.simplefilter("ignore")
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    hyperopt_log.setLevel(logging.WARNING)
    if torch:
        torch.set_num_threads(1)

    def undo() -> None:
        limits.restore_original_limits()
        if torch and threads:
            torch.set_num_threads(threads)
        optuna.logging.set_verbosity(verbosity)
        hyperopt_log.setLevel(level)

    return undo


def _import_torch() -> Any:
    try:
        import torch
    except ImportError:
        return None
    return torch


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def _names(text: str) -> list[str]:
    names = [x for x in text.split(",") if x]
    unknown = set(names) - set(ML_TASKS)
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown task(s) {', '.join(sorted(unknown))}")
    return names


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=int, default=200, help="trials per BBOB run")
    parser.add_argument("--ml-budget", type=int, default=100, help="trials per sklearn run")
    parser.add_argument("--seeds", type=int, default=10, help="seeds per BBOB problem")
    parser.add_argument("--ml-seeds", type=int, default=60, help="seeds per sklearn task")
    parser.add_argument("--functions", type=_ints, default=[1, 8, 10, 15, 21])
    parser.add_argument("--dims", type=_ints, default=[2, 5, 10])
    parser.add_argument("--instances", type=_ints, default=[1, 2, 3])
    parser.add_argument(
        "--gp-instances", type=_ints, default=None, help="the BBOB instances gp runs on (all)"
    )
    parser.add_argument("--ml-tasks", type=_names, default=list(ML_TASKS), help=", ".join(ML_TASKS))
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument(
        "--jobs",
        type=int,
        default=os.cpu_count() or 1,
        help="processes for the efficiency runs, each on one thread (CPUs); the cost run is alone",
    )
    parser.add_argument("--cost-trials", type=int, default=300, help="0 skips the cost run")
    parser.add_argument(
        "--cost-problem", type=_ints, default=[15, 10], help="BBOB function,dimension"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> str:
    args = parse(argv)
    methods = [m for m in args.methods.split(",") if m]
    started = time.perf_counter()
    with one_thread():
        results, cost = run_all(args, methods)
    text = report(args, methods, results, cost, time.perf_counter() - started)
    print(text)
    return text


def run_all(args: argparse.Namespace, methods: list[str]) -> tuple[list[Result], dict[str, Trace]]:
    """The efficiency runs, then the cost run."""
    if {"gp", "auto"} & set(methods) and importlib.util.find_spec("torch"):
        warm_up_gp()
    results = measure_in_parallel(specs(args), methods, args.gp_instances, args.jobs)
    if not args.cost_trials:
        return results, {}
    f, d = args.cost_problem
    problem, *_ = bbob_problems([f], [d], [1], args.cost_trials)
    return results, cost_run(problem, methods, args.cost_trials)


def warm_up_gp() -> None:
    """One GP fit first: its one-time start (lazy imports, about a second) is not a suggestion."""
    study = optuna.create_study(sampler=make_sampler("gp", seed=0))
    study.optimize(lambda t: t.suggest_float("x", 0, 1) ** 2, n_trials=12)


def _gp_runs(gp_instances: Sequence[int] | None) -> str:
    if gp_instances is None:
        return "every method on every run"
    return f"every method on every run, but `gp` on BBOB only on instance(s) {gp_instances}"


def report(
    args: argparse.Namespace,
    methods: list[str],
    results: list[Result],
    cost: dict[str, Trace],
    elapsed: float,
) -> str:
    singles = [m for m in SINGLE if m in methods]
    suites = [s for s in ("bbob", "sklearn") if any(r.suite == s for r in results)]
    lines = [
        "## Search efficiency against random search (BBOB and scikit-learn tasks)",
        "",
        "Trials random search needs / trials the method needs to reach random search's final "
        "result (N / k, median over runs, then over tasks; `<1`: not reached within N; "
        "`random (control)`: a second random search). "
        f"BBOB: functions {args.functions}, dimensions {args.dims}, instances {args.instances}, "
        f"N = {args.budget}; scikit-learn: {', '.join(args.ml_tasks) or 'none'}, "
        f"N = {args.ml_budget}; seeds: {args.seeds} per BBOB problem, {args.ml_seeds} per "
        f"scikit-learn task; {_gp_runs(args.gp_instances)}; "
        f"{args.jobs} process(es) of one thread each; "
        f"{elapsed / 60:.1f} min in all.",
        "",
        *summary_table(results, methods, suites),
        "",
        *task_table(results, methods, singles),
        "",
    ]
    if cost:
        f, d = args.cost_problem
        lines += [
            f"Optimizer seconds per trial over one full run of {args.cost_trials} trials on "
            f"BBOB f{f} in {d}-D (instance 1, seed 0, no early stop):",
            "",
            *cost_table(cost, max(1, args.cost_trials // 3)),
            "",
        ]
    lines += ["Targets:", "", *verdicts(results, cost, singles), ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()

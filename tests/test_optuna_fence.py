"""Optuna's private API is fenced into ``hpo_nb/_optuna.py``, and the sampler-equivalence tests
pass against the oldest and the newest Optuna 5.x: an Optuna upgrade breaks one file, loudly."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "hpo_nb"
FENCE = PACKAGE / "_optuna.py"

# Private names hpo_nb reads, writes or calls on Optuna's objects (studies, trials, storages,
# samplers, distributions, pruners): outside the fence, only ``self.<name>`` in a subclass.
PRIVATE_NAMES = frozenset(
    {
        "_study_id",
        "_trial_id",
        "_contains",
        "_get_single_value",
        "_filter_study",
        "_storage",
        "_get_trials",
        "_is_multi_objective",
        "_thread_local",
        "_stop_flag",
        "_fixed_params",
        "_cached_frozen_trial",
        "_studies",
        "_max_trial_id",
        "_trial_id_to_study_id_and_number",
        "_update_cache",
        "_get_stale_trial_ids",
        "_create_alembic_script",
        "_search_space",
        "_percentile",
        "_lower",
        "_upper",
        "_compare",
        "_log_gauss_mass",
        "_norm_pdf_logC",
        "_mixture_distribution",
    }
)

# The tests that hold hpo_nb's samplers to Optuna's own, suggestion for suggestion, and those
# that reach into the Optuna internals hpo_nb's subclasses override.
EQUIVALENCE_TESTS = [
    "tests/test_tpe.py",
    "tests/test_cmaes.py",
    "tests/test_auto_policy.py::test_gp_is_fitted_to_the_warped_values_and_the_trials_keep_theirs",
    "tests/test_algorithms.py::test_auto_works_out_cma_es_warm_start_once_while_its_first_trials_run",
]
OPTUNA_RELEASES = {"oldest": "optuna==5.0.0", "newest": "optuna>=5,<6"}


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _chain(node: ast.expr) -> list[str] | None:
    """``a.b.c`` as ["a", "b", "c"]; None if it does not start from a plain name."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    return [node.id, *reversed(parts)]


def _optuna_names(tree: ast.AST) -> set[str]:
    """The names a module binds to Optuna's modules, classes and functions by importing them."""
    names = {"optuna"}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.asname or a.name.split(".")[0] for a in node.names if a.name == "optuna"}
            names |= {a.asname for a in node.names if a.name.startswith("optuna.") and a.asname}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "optuna":
            names |= {a.asname or a.name for a in node.names if node.level == 0}
    return names


def _violations(source: str) -> Iterator[tuple[int, str]]:
    tree = ast.parse(source)
    optuna_names = _optuna_names(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                path = alias.name.split(".")
                if path[0] == "optuna" and any(_is_private(p) for p in path):
                    yield node.lineno, f"import {alias.name}"
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            path = node.module.split(".")
            if path[0] != "optuna":
                continue
            for alias in node.names:
                if any(_is_private(p) for p in [*path, alias.name]):
                    yield node.lineno, f"from {node.module} import {alias.name}"
        elif isinstance(node, ast.Attribute):
            chain = _chain(node)
            if chain is not None and chain[0] in optuna_names:
                # optuna.<...>._<...>, or the like from a name imported from Optuna: reported
                # once, at its first private part
                if _is_private(node.attr) and not any(map(_is_private, chain[:-1])):
                    yield node.lineno, ".".join(chain)
            elif node.attr in PRIVATE_NAMES and not (
                isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")
            ):
                yield node.lineno, ast.unparse(node)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("getattr", "setattr", "hasattr")
            and len(node.args) >= 2
            and isinstance(node.args[1], ast.Constant)
            and node.args[1].value in PRIVATE_NAMES
        ):
            yield node.lineno, f"{node.func.id}(..., {node.args[1].value!r})"


def test_only_the_fence_touches_optunas_private_api() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{line}: {what}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if path != FENCE
        for line, what in _violations(path.read_text())
    ]
    assert not found, "Optuna's private API outside hpo_nb/_optuna.py:\n" + "\n".join(found)


@pytest.mark.parametrize(
    "code",
    [
        "from optuna.samplers._tpe.sampler import default_gamma",
        "import optuna.storages._rdb.models",
        "optuna.pruners._filter_study(study, trial)",
        "optuna.storages._rdb.storage._VersionManager",
        "study._study_id",
        "trial._fixed_params = {}",
        "getattr(study, '_stop_flag', False)",
        "from optuna.samplers import TPESampler\nTPESampler._compare(a, b)",
        "from optuna import samplers\nsamplers._tpe.sampler",
        "import optuna.storages as s\ns._rdb",
    ],
)
def test_the_scan_finds_private_uses(code: str) -> None:
    assert list(_violations(code))


def test_the_scan_lets_public_and_own_names_through() -> None:
    code = (
        "import optuna\nfrom optuna.trial import FrozenTrial\nfrom hpo_nb import _optuna\n"
        "optuna.__version__\nself._study_id\n_optuna.trial_id(t)\nsuper()._sample_relative()\n"
        "FrozenTrial.__module__\noptimizer._rng\n"
    )
    assert not list(_violations(code))


def test_a_missing_private_name_fails_at_import_in_one_line() -> None:
    code = "import optuna.pruners\ndel optuna.pruners._filter_study\nimport hpo_nb._optuna\n"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    import optuna

    last = done.stderr.strip().splitlines()[-1]
    assert done.returncode != 0
    assert last == (
        "ImportError: hpo_nb needs Optuna's private optuna.pruners._filter_study, which Optuna "
        f"{optuna.__version__} lacks: hpo_nb/_optuna.py must be updated for this Optuna"
    )


def _pip(*args: str | Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", *map(str, args)], check=True)


@pytest.fixture(scope="module")
def optuna_wheel(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """The wheel of the Optuna release ``spec`` resolves to now, downloaded once per module."""
    wheels: dict[str, Path] = {}

    def wheel(spec: str) -> Path:
        if spec not in wheels:
            folder = tmp_path_factory.mktemp("optuna-wheel")
            _pip("download", "-q", "--no-deps", "--only-binary=:all:", "-d", folder, spec)
            (wheels[spec],) = folder.glob("optuna-*.whl")
        return wheels[spec]

    return wheel


@pytest.mark.timeout(600)
@pytest.mark.parametrize("release", list(OPTUNA_RELEASES))
def test_sampler_equivalence_on_the_oldest_and_newest_optuna(
    release: str, optuna_wheel: Callable[[str], Path], tmp_path: Path
) -> None:
    wheel = optuna_wheel(OPTUNA_RELEASES[release])
    version = wheel.name.split("-")[1]
    assert version == "5.0.0" if release == "oldest" else version.startswith("5.")
    target = tmp_path / "site"
    _pip("install", "-q", "--no-deps", "--target", target, wheel)
    run_tests = (
        "import sys, optuna, pytest\n"
        "print('optuna', optuna.__version__, 'from', optuna.__file__, flush=True)\n"
        f"sys.exit(pytest.main(['-p', 'no:cacheprovider', '-q', *{EQUIVALENCE_TESTS!r}]))\n"
    )
    path = os.pathsep.join(p for p in (str(target), os.environ.get("PYTHONPATH")) if p)
    done = subprocess.run(
        [sys.executable, "-c", run_tests],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": path},
        capture_output=True,
        text=True,
        timeout=540,
    )
    output = done.stdout + done.stderr
    found = re.search(r"^optuna (\S+) from (\S+)", output, re.MULTILINE)
    assert found, output
    assert found[1] == version and found[2].startswith(str(target)), output
    assert done.returncode == 0, f"Optuna {version}:\n{output[-6000:]}"

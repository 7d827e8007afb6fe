"""Bad input is one line and changes nothing; data that is not ours is never unpickled.

(Issue 24's first items; the rest of its catalogue and the fault suite are still to come.)
"""

from __future__ import annotations

import pathlib
import pickle
import time

import optuna
import pytest
from optuna.storages import RDBStorage

import hpo_nb
from hpo_nb import HpoError, RunState
from hpo_nb.frontends.console import Console
from hpo_nb.io.plots import file_name

MARKER_NAME = "pwned"


class _Touch:
    """Unpickling this creates a file: what a crafted optimizer could do."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):  # type: ignore[override]
        return (pathlib.Path.touch, (pathlib.Path(self.path),))


def quadratic(trial):
    return (trial.suggest_float("x", -1.0, 1.0) - 0.2) ** 2


def always_fails(trial):
    trial.suggest_float("x", 0.0, 1.0)
    raise ValueError("boom")


def _plant_optimizer(storage: str, name: str, marker: pathlib.Path) -> None:
    """Complete trials of study ``name`` whose system attributes hold a crafted CMA-ES
    optimizer (as a storage written by someone else, or an imported archive, could)."""
    study = optuna.create_study(study_name=name, storage=storage)
    rdb = RDBStorage(storage)
    evil = pickle.dumps(_Touch(str(marker))).hex()
    for _ in range(4):
        trial = study.ask({"x": optuna.distributions.FloatDistribution(-1.0, 1.0)})
        rdb.set_trial_system_attr(trial._trial_id, "cma:optimizer:0", evil)
        rdb.set_trial_system_attr(trial._trial_id, "cma:generation", 0)
        study.tell(trial, 1.0)


def test_a_stored_optimizer_this_process_did_not_write_is_never_unpickled(db, tmp_path):
    marker = tmp_path / MARKER_NAME
    _plant_optimizer(db, "quadratic", marker)
    run = hpo_nb.run(quadratic, n_trials=12, storage=db, sampler="cmaes", workers=1, wait=True)
    assert run.state == RunState.COMPLETED, run.reason
    assert not marker.exists()


def test_an_archive_import_drops_pickled_sampler_state(db, tmp_path):
    marker = tmp_path / MARKER_NAME
    _plant_optimizer(db, "planted", marker)
    path = hpo_nb.export_archive("planted", tmp_path / "planted.zip", db)
    other = f"sqlite:///{tmp_path / 'other.db'}"
    hpo_nb.import_archive(path, other)
    for t in optuna.load_study(study_name="planted", storage=other).trials:
        assert not any(k.startswith("cma:optimizer") for k in t.system_attrs)
        assert t.system_attrs["cma:generation"] == 0  # plain data is kept
    assert not marker.exists()


@pytest.mark.parametrize(
    ("name", "folder"),
    [("../escape", "escape"), ("/abs/path", "abs_path"), ("a/../../b", "a_.._.._b")],
)
def test_a_study_name_never_leaves_the_export_folder(name, folder):
    assert file_name(name) == folder
    assert "/" not in file_name(name) and not file_name(name).startswith(".")


def test_the_panels_export_writes_under_hpo_plots(db, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    hpo_nb.run(quadratic, n_trials=2, storage=db, study="../escape", workers=1, wait=True)
    written: list[pathlib.Path] = []
    monkeypatch.setattr(
        "hpo_nb.engine.lifecycle.plots",
        lambda name, folder, storage=None: written.append(pathlib.Path(folder)) or [],
    )
    console = Console(study="../escape", options=hpo_nb.RunOptions(storage=db))
    console.command({"cmd": "export"})
    deadline = time.monotonic() + 30
    while not written and time.monotonic() < deadline:
        time.sleep(0.05)
    assert written == [pathlib.Path("hpo_plots") / "escape"]


@pytest.mark.parametrize(
    ("enqueue", "message"),
    [
        ({"x": 99}, "--enqueue gives x=99, outside its space (from -1.0 to 1.0)"),
        ({"zz": 1}, "--enqueue names parameter 'zz', which the objective does not have"),
        ([{"x": 0.5}, {"x": "a"}], "--enqueue gives x='a', outside its space"),
    ],
)
def test_a_bad_enqueued_configuration_changes_nothing(db, tmp_path, enqueue, message):
    hpo_nb.run(quadratic, n_trials=2, storage=db, workers=1, wait=True)
    before = [
        (t.number, t.state) for t in optuna.load_study(study_name="quadratic", storage=db).trials
    ]
    with pytest.raises(HpoError, match=__import__("re").escape(message)):
        hpo_nb.run(quadratic, n_trials=4, storage=db, enqueue=enqueue)
    after = [
        (t.number, t.state) for t in optuna.load_study(study_name="quadratic", storage=db).trials
    ]
    assert after == before


def test_a_sampler_option_of_the_wrong_type_creates_no_study(tmp_path):
    db = f"sqlite:///{tmp_path / 'x.db'}"
    with pytest.raises(HpoError, match="option n_startup_trials must be of type int"):
        hpo_nb.run(
            quadratic,
            n_trials=2,
            storage=db,
            sampler="tpe",
            sampler_options={"n_startup_trials": "abc"},
        )
    assert not (tmp_path / "x.db").exists()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"storage": ""}, "storage must be a non-empty string"),
        ({"storage": "  "}, "storage must be a non-empty string"),
        ({"study": ""}, "study must be a non-empty string"),
    ],
)
def test_empty_names_are_refused(changes, message):
    with pytest.raises(HpoError, match=message):
        hpo_nb.run(quadratic, n_trials=2, **changes)


def test_an_empty_storage_is_refused_by_every_command():
    with pytest.raises(HpoError, match="the storage is empty"):
        hpo_nb.studies("")
    with pytest.raises(HpoError, match="the study name is empty"):
        hpo_nb.import_archive("any.zip", study="")


def test_read_only_commands_never_create_a_database(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for call in (
        lambda: hpo_nb.studies("typo.db"),
        lambda: hpo_nb.status("s", "typo.db"),
        lambda: hpo_nb.best("s", "typo.db"),
        lambda: hpo_nb.stop("s", "typo.db"),
    ):
        with pytest.raises(HpoError, match=r"no database at typo\.db"):
            call()
    assert not (tmp_path / "typo.db").exists()


def test_a_run_whose_trials_all_fail_the_same_way_ends_failed(db):
    run = hpo_nb.run(
        always_fails, n_trials=30, storage=db, workers=1, stop_after_failures=3, wait=True
    )
    assert run.state == RunState.FAILED
    assert run.reason == "3 trials in a row failed with: ValueError: boom"
    assert run.progress.failed < 30
    with pytest.raises(HpoError, match=r"has no complete trial yet \(last failure: trial"):
        print(run.best_value)
    with pytest.raises(HpoError, match="has no complete trial yet"):
        hpo_nb.best("always_fails", db)

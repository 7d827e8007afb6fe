"""Every run option reaches the running controller, through every front door.

The doors: ``%hpo_run``, ``%hpo_panel`` + the panel's Start, :func:`hpo_nb.run`, and
``%hpo_resume`` in a new kernel (the recorded options survive the restart). Two sets of sample
values cover every :class:`~hpo_nb.RunOptions` field with a value other than its default (two,
because some options exclude others: ``workers`` sizes a local cluster, ``gpus`` picks the GPUs
of a cuda one). A field added without a sample value fails here; one that a door drops fails
that door. The cuda set runs dask-cuda's ``LocalCUDACluster`` on a fake NVML with two GPUs.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from _kernel import Kernel
from IPython.core.magic_arguments import parse_argstring

import hpo_nb
from hpo_nb import HpoError, RunOptions
from hpo_nb.engine.options import option_specs, panel_fields
from hpo_nb.frontends.magics import HpoMagics
from hpo_nb.io.storage import storage_url

HERE = Path(__file__).resolve().parent

SPACE = {"x": {"type": "float", "low": 0.0, "high": 1.0}}
NARROW = {"x": {"type": "float", "low": 0.0, "high": 0.5}}
ENQUEUE = [{"x": 0.25}]

# Two sets of non-default values; together they cover every option (see test_samples_cover).
LOCAL: dict[str, Any] = {
    "n_trials": 3,
    "storage": "fwd.db",
    "sampler": "tpe",
    "sampler_options": {"n_startup_trials": 2},
    "pruner": "percentile",
    "pruner_options": {"percentile": 30.0},
    "space": SPACE,
    "enqueue": ENQUEUE,
    "workers": 2,
    "cluster": "local",
    "concurrency": 1,
    "trial_timeout": 60.0,
    "retries": 1,
    "stop_after_failures": 7,
    "timeout": 600.0,
    "max_time": 900.0,
    "patience": 50,
    "min_delta": 0.01,
    "seed": 7,
    "ci_trials": 3,
    "retry_failed": True,
    "direction": "maximize",
}
CUDA: dict[str, Any] = {
    "n_trials": 2,
    "storage": "fwd.db",
    "sampler": "random",
    "pruner": "none",
    "narrow": NARROW,
    "cluster": "cuda",
    "gpus": "1",
    "directions": ["minimize", "maximize"],
}
SETS = {"local": ("single", LOCAL), "cuda": ("double", CUDA)}
VARIABLES = {"space": "SPACE", "narrow": "NARROW", "enqueue": "ENQUEUE"}  # passed by name

SETUP = f"""
%load_ext hpo_nb
import json, hpo_nb
SPACE, NARROW, ENQUEUE = {SPACE!r}, {NARROW!r}, {ENQUEUE!r}

def single(trial):
    return trial.params.get("x", 0.5)

def double(trial):
    x = trial.suggest_float("x", 0, 1)
    return x, 1 - x

def options_of(handle):
    print("OPTIONS", json.dumps(handle.options.to_json()))
"""


def flags(options: dict[str, Any]) -> str:
    """The magic's flags for ``options``."""
    out = []
    for name, value in options.items():
        spec = option_specs()[name]
        flag = spec.flag or "--" + name.replace("_", "-")
        if spec.switch:
            out.append(flag)
        elif name in VARIABLES:
            out.append(f"{flag} {VARIABLES[name]}")
        elif spec.repeat:
            out.append(" ".join(f"{flag} {k}={v}" for k, v in value.items()))
        elif isinstance(value, list):
            out.append(f"{flag} {' '.join(value)}")
        else:
            out.append(f"{flag} {value}")
    return " ".join(out)


def python_args(options: dict[str, Any]) -> str:
    return ", ".join(
        f"{k}={VARIABLES[k]}" if k in VARIABLES else f"{k}={v!r}" for k, v in options.items()
    )


def expected(options: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return RunOptions.of(**{**options, **changes}).to_json()


def seen(reply_text: str) -> dict[str, Any]:
    (line,) = [ln for ln in reply_text.splitlines() if ln.startswith("OPTIONS ")]
    return json.loads(line.removeprefix("OPTIONS "))


def same(actual: dict[str, Any], wanted: dict[str, Any]) -> None:
    """Equal, the storage compared as the URL it names."""
    actual, wanted = dict(actual), dict(wanted)
    assert storage_url(actual.pop("storage")) == storage_url(wanted.pop("storage"))
    assert actual == wanted


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict[str, str]:
    paths = [str(HERE / "fake_nvml"), os.environ.get("PYTHONPATH")]
    return {
        "PYTHONPATH": os.pathsep.join(filter(None, paths)),
        "FAKE_NVML_GPUS": "2",
        "CUDA_VISIBLE_DEVICES": "",  # the fake's devices are 0 and 1
        "CI": "",  # ci_trials applies only under CI: the same expectations everywhere
    }


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("forwarding")


@pytest.fixture(scope="module")
def first_kernel(folder, env):
    kernel = Kernel(str(folder), extra_env=env)
    kernel.ok(SETUP)
    yield kernel
    kernel.shutdown()


# -- the contract, without a cluster ---------------------------------------------------------
def test_samples_cover_every_option():
    """Each option has a non-default sample value in some set: a new option must get one."""
    defaults = RunOptions()
    covered = {
        name
        for _, values in SETS.values()
        for name, value in RunOptions.of(**values).changed().items()
        if value != getattr(defaults, name)
    }
    covered.add("study")  # each door names its own study
    assert covered == set(option_specs())


@pytest.mark.parametrize(
    ("magic", "extra"),
    [("hpo_run", {"name", "wait", "output"}), ("hpo_panel", {"name", "output"})],
)
def test_each_magic_has_a_flag_per_option_by_its_name(magic, extra):
    parser = getattr(HpoMagics, magic).parser
    dests = {a.dest for a in parser._actions if a.dest != "help"}
    assert dests == set(option_specs()) | extra


def test_resume_takes_every_option_but_the_study_as_a_change():
    parser = HpoMagics.hpo_resume.parser
    dests = {a.dest for a in parser._actions if a.dest != "help"}
    assert dests == set(option_specs()) | {"wait", "output"}  # study: the positional
    args = parse_argstring(HpoMagics.hpo_resume, "s --n-trials 9 --retries 2 --gpus 0")
    assert (args.study, args.n_trials, args.retries, args.gpus) == ("s", 9, 2, "0")


def test_options_round_trip_through_json():
    for _, values in SETS.values():
        options = RunOptions.of(**values)
        assert RunOptions.from_json(json.loads(json.dumps(options.to_json()))) == options
    recorded = RunOptions.of(**LOCAL).to_json(recorded_only=True)
    assert {"study", "storage", "retry_failed"}.isdisjoint(recorded)
    assert set(recorded) == {n for n, s in option_specs().items() if s.recorded}


def test_bad_values_are_one_line_errors():
    for changes, message in [
        ({"concurrency": 0}, "concurrency must be an integer >= 1, got 0"),
        ({"sampler": "bayes"}, "unknown sampler 'bayes'"),
        ({"min_delta": float("inf")}, "min_delta must be a finite number >= 0"),
        ({"direction": "maximize", "directions": ["minimize"]}, "either direction or"),
        ({"sampler_options": "n_startup_trials"}, "is not key=value"),
        ({"nope": 1}, "unknown run option 'nope'"),
    ]:
        with pytest.raises(HpoError, match=message) as info:
            RunOptions.of(**changes)
        assert "\n" not in str(info.value)


def test_the_panel_edits_each_of_its_run_settings_by_name(db):
    """Every setting the panel shows takes a ``config`` command by the option's name (the
    sample values above); an option the panel does not edit is refused, changing nothing."""
    console = hpo_nb.panel(single_for_panel, storage=db, n_trials=5)
    samples = {**CUDA, **LOCAL}
    for name in panel_fields():
        value = RunOptions.of(**{name: samples[name]}).to_json()[name]
        console.command({"cmd": "config", "config": {name: value}})
        assert console.panel.config_error == "", name
        assert console.panel.config[name] == value, name
    before = dict(console.panel.config)
    console.command({"cmd": "config", "config": {"workers": 3}})
    assert "'workers' is not a run setting the panel edits" in console.panel.config_error
    assert console.panel.config == before


def single_for_panel(trial):
    return trial.suggest_float("x", 0, 1)


def test_gpus_without_a_gpu_is_refused_before_the_study_is_touched(tmp_path):
    db = f"sqlite:///{tmp_path / 'g.db'}"
    with pytest.raises(HpoError, match="--gpus 0 picks the GPUs of a cuda cluster"):
        hpo_nb.run(lambda t: t.suggest_float("x", 0, 1), n_trials=2, storage=db, gpus="0")
    assert not (tmp_path / "g.db").exists()


# -- the doors ---------------------------------------------------------------------------------
@pytest.mark.kernel
@pytest.mark.parametrize("kind", list(SETS))
def test_the_magic_forwards_every_option(first_kernel, kind):
    objective, options = SETS[kind]
    study = f"{kind}_magic"
    reply = first_kernel.ok(
        f"%hpo_run {objective} --study {study} {flags(options)} --wait -o h\noptions_of(h)",
        timeout=240,
    )
    same(seen(reply.stdout), expected(options, study=study))
    assert "completed" in first_kernel.ok("print(h.state.value)").stdout


@pytest.mark.kernel
@pytest.mark.parametrize("kind", list(SETS))
def test_the_panel_start_forwards_every_option(first_kernel, kind):
    objective, options = SETS[kind]
    study = f"{kind}_panel"
    reply = first_kernel.ok(
        f"%hpo_panel {objective} --study {study} {flags(options)} -o c\n"
        "c.loaded.wait(60)\n"
        "c.command({'cmd': 'start'})\n"
        "assert c.run is not None, c.panel.status\n"
        "c.run.wait(240)\n"
        "options_of(c.run)",
        timeout=300,
    )
    same(seen(reply.stdout), expected(options, study=study))


@pytest.mark.kernel
@pytest.mark.parametrize("kind", list(SETS))
def test_hpo_nb_run_forwards_every_option(first_kernel, kind):
    objective, options = SETS[kind]
    study = f"{kind}_python"
    reply = first_kernel.ok(
        f"h = hpo_nb.run({objective}, study={study!r}, {python_args(options)}, wait=True)\n"
        "options_of(h)",
        timeout=240,
    )
    same(seen(reply.stdout), expected(options, study=study))


@pytest.mark.kernel
@pytest.mark.parametrize("kind", list(SETS))
def test_resume_in_a_new_kernel_runs_with_the_recorded_options(first_kernel, folder, env, kind):
    """After a restart, ``%hpo_resume`` runs the study with what it recorded; only what the
    recording leaves out (study, storage, retry_failed) and the flags given come from the
    resume."""
    objective, options = SETS[kind]
    study = f"{kind}_magic"  # ran through the magic above (or now, when run alone)
    first_kernel.ok(
        f"if not hpo_nb.studies({options['storage']!r}) or {study!r} not in "
        f"[s.name for s in hpo_nb.studies({options['storage']!r})]:\n"
        f"    %hpo_run {objective} --study {study} {flags(options)} --wait",
        timeout=240,
    )
    first_kernel.ok("hpo_nb.stop_all(); hpo_nb.close_clusters()")
    second = Kernel(str(folder), extra_env=env)
    try:
        second.ok(SETUP)
        target = options["n_trials"] + 2
        reply = second.ok(
            f"%hpo_resume {study} --storage {options['storage']} --n-trials {target} "
            "--retry-failed --wait -o h\noptions_of(h)",
            timeout=240,
        )
    finally:
        second.shutdown()
    recorded = {k: v for k, v in options.items() if option_specs()[k].recorded}
    wanted = expected(recorded, study=study, storage=options["storage"])
    same(seen(reply.stdout), {**wanted, "n_trials": target, "retry_failed": True})

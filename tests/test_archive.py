"""The study archive: export, import into any storage, identical trials, one-line errors."""

from __future__ import annotations

import datetime
import io
import json
import re
import shutil
import sqlite3
import tracemalloc
import zipfile

import numpy as np
import optuna
import pytest
from _kernel import Kernel
from optuna.distributions import BaseDistribution, distribution_to_json
from optuna.storages import BaseStorage, InMemoryStorage, RDBStorage
from optuna.storages._rdb import models
from optuna.trial import FrozenTrial, TrialState

import hpo_nb.io.archive as archive_module
from hpo_nb import HpoError
from hpo_nb.engine.lifecycle import export_archive, import_archive
from hpo_nb.io.archive import read_archive, write_archive

NAN, INF = float("nan"), float("inf")


def suggest(trial: optuna.Trial) -> float:
    """Every kind of parameter, and one that exists only under a condition."""
    kind = trial.suggest_categorical("kind", [None, True, 2, 3.5, "s"])
    trial.suggest_int("n", 1, 9)
    trial.suggest_int("n_log", 1, 1024, log=True)
    trial.suggest_int("n_step", 0, 100, step=5)
    x = trial.suggest_float("x", -1.0, 1.0)
    trial.suggest_float("lr", 1e-6, 1.0, log=True)
    trial.suggest_float("q", 0.0, 1.0, step=0.1)
    if kind == "s":
        trial.suggest_float("only_s", 0.0, 1.0)
    return x


def build(storage: BaseStorage) -> None:
    """Study ``src`` (one objective) and ``pair`` (two) with trials in every state."""
    src = optuna.create_study(
        study_name="src", storage=storage, sampler=optuna.samplers.RandomSampler(seed=1)
    )
    src_id = storage.get_study_id_from_name("src")
    src.set_user_attr("note", {"nested": [1, 2.5, None, "é"], "nan": NAN, "inf": -INF})
    storage.set_study_system_attr(src_id, "hpo_nb:config", {"sampler": "random", "n": 12})
    for fixed in ({"kind": "s"}, {"kind": None}, {"kind": True, "x": 5e-324}):
        src.enqueue_trial(fixed)
    for i in range(12):
        trial = src.ask()
        x = suggest(trial)
        for step in range(4):
            trial.report((NAN, INF, x / 3, x)[step] if i % 2 else x + step, step)
        trial.set_user_attr("i", {"i": i, "nan": NAN})
        storage.set_trial_system_attr(trial._trial_id, "hpo_nb:trial", {"session": "abc"})
        if i % 4 == 1:
            src.tell(trial, state=TrialState.PRUNED)
        elif i % 4 == 2:
            storage.set_trial_system_attr(trial._trial_id, "hpo_nb:fail_reason", "boom")
            src.tell(trial, state=TrialState.FAIL)
        else:
            src.tell(trial, (INF, x, -INF)[i % 3])
    running = src.ask()  # left RUNNING, as a dead kernel leaves it
    suggest(running)
    running.report(0.5, 0)
    src.enqueue_trial({"x": 0.25})  # WAITING
    pair = optuna.create_study(
        study_name="pair",
        storage=storage,
        directions=["minimize", "maximize"],
        sampler=optuna.samplers.RandomSampler(seed=2),
    )
    for i in range(4):
        trial = pair.ask()
        x = trial.suggest_float("x", 0.0, 1.0)
        if i == 3:
            pair.tell(trial, state=TrialState.FAIL)
        else:
            pair.tell(trial, [x, (INF, 1 - x, -x)[i]])


def canon(value):
    """``value`` with every float as its exact bits (NaN equal to NaN) and the
    type of every scalar kept (True is not 1)."""
    if isinstance(value, float):
        return ("float", value.hex())
    if value is None or isinstance(value, (bool, int, str, TrialState, datetime.datetime)):
        return (type(value).__name__, value)
    if isinstance(value, BaseDistribution):
        return distribution_to_json(value)
    if isinstance(value, dict):
        return {k: canon(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [canon(v) for v in value]
    raise TypeError(type(value))


def fields(trial: FrozenTrial, *, whole_seconds: bool = False) -> dict:
    """Every field of a FrozenTrial but its storage-internal ``_trial_id``."""
    out = {k: canon(v) for k, v in vars(trial).items() if k != "_trial_id"}
    if whole_seconds:  # MySQL's DATETIME as Optuna declares it keeps whole seconds
        for key in ("_datetime_start", "datetime_complete"):
            moment = getattr(trial, key.lstrip("_"))
            out[key] = canon(moment and moment.replace(microsecond=0))
    return out


def trials(storage, name):
    return optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=False)


def assert_same_study(source, name, target, new_name, *, whole_seconds=False):
    a, b = trials(source, name), trials(target, new_name)
    assert [t.number for t in b] == [t.number for t in a]
    for x, y in zip(a, b, strict=True):
        assert fields(y, whole_seconds=whole_seconds) == fields(x, whole_seconds=whole_seconds)
    src, dst = RDBStorage(source), RDBStorage(target)
    src_id, dst_id = src.get_study_id_from_name(name), dst.get_study_id_from_name(new_name)
    assert dst.get_study_directions(dst_id) == src.get_study_directions(src_id)
    assert canon(dst.get_study_user_attrs(dst_id)) == canon(src.get_study_user_attrs(src_id))
    assert canon(dst.get_study_system_attrs(dst_id)) == canon(src.get_study_system_attrs(src_id))


@pytest.mark.database
def test_round_trip_on_every_backend(any_db, tmp_path):
    build(RDBStorage(any_db))
    assert {t.state for t in trials(any_db, "src")} == set(TrialState)
    other = f"sqlite:///{tmp_path / 'other.db'}"
    for name in ("src", "pair"):
        path = export_archive(name, tmp_path / f"{name}.zip", any_db)
        assert import_archive(path, other) == name
        assert_same_study(any_db, name, other, name)
        assert import_archive(path, any_db, study=f"{name}-copy") == f"{name}-copy"
        assert_same_study(any_db, name, any_db, f"{name}-copy")
    # The copy goes on where the original stopped: its WAITING trial first, then trial N.
    study = optuna.load_study(study_name="src-copy", storage=any_db)
    n = len(study.trials)
    study.optimize(suggest, n_trials=2)
    waiting, new = study.trials[n - 1], study.trials[n]
    assert (waiting.state, waiting.params["x"], new.number) == (TrialState.COMPLETE, 0.25, n)


@pytest.mark.database
def test_a_running_study_is_archived_as_one_snapshot(any_db, tmp_path, monkeypatch):
    build(RDBStorage(any_db))
    before = trials(any_db, "src")
    real, written = models.TrialValueModel.stored_repr_to_value, []

    def meanwhile(*args):
        if not written:  # the study's kernel finishes a trial while the export reads
            written.append(1)
            study = optuna.load_study(study_name="src", storage=any_db)
            trial = study.ask()
            trial.report(1.0, 0)
            study.tell(trial, suggest(trial))
        return real(*args)

    monkeypatch.setattr(models.TrialValueModel, "stored_repr_to_value", meanwhile)
    path = export_archive("src", tmp_path / "src.zip", any_db)
    monkeypatch.undo()
    after = trials(any_db, "src")  # its WAITING trial ran meanwhile
    assert written and after[-1].state == TrialState.COMPLETE != before[-1].state
    copy = f"sqlite:///{tmp_path / 'copy.db'}"
    import_archive(path, copy)
    assert [fields(t) for t in trials(copy, "src")] == [fields(t) for t in before]


@pytest.mark.database
def test_an_archive_of_any_optuna_storage_imports_everywhere(any_db, tmp_path):
    memory = InMemoryStorage()
    build(memory)
    for name in ("src", "pair"):
        path = write_archive(memory, memory.get_study_id_from_name(name), tmp_path / "a.zip")
        source = memory.get_all_trials(memory.get_study_id_from_name(name))
        assert [fields(t) for t in read_archive(path).trials] == [fields(t) for t in source]
        import_archive(path, any_db)
        mysql = any_db.startswith("mysql")
        copied = trials(any_db, name)
        assert len(copied) == len(source)
        for x, y in zip(source, copied, strict=True):
            assert fields(y, whole_seconds=mysql) == fields(x, whole_seconds=mysql)


def test_the_archive_is_much_smaller_than_the_database(tmp_path):
    db = tmp_path / "hpo.db"
    memory = InMemoryStorage()
    study = optuna.create_study(storage=memory, study_name="big")
    rng = np.random.default_rng(0)
    for _ in range(300):
        trial = study.ask()
        x = trial.suggest_float("x", 0, 1)
        trial.suggest_categorical("c", ["a", "b"])
        for step, v in enumerate(rng.random(20)):
            trial.report(float(v), step)
        study.tell(trial, x)
    seed = write_archive(memory, memory.get_study_id_from_name("big"), tmp_path / "seed.zip")
    import_archive(seed, f"sqlite:///{db}")
    path = export_archive("big", tmp_path / "big.zip", f"sqlite:///{db}")
    conn = sqlite3.connect(db)
    conn.execute("VACUUM")  # in WAL mode, VACUUM too is written to the WAL first
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    assert path.stat().st_size < 0.2 * db.stat().st_size
    names = zipfile.ZipFile(path).namelist()
    assert names == [
        "archive.json",
        "trials.jsonl",
        "intermediate_trial.npy",
        "intermediate_step.npy",
        "intermediate_value.npy",
    ]
    assert not list(tmp_path.glob(".*partial"))


def rewrite(path, member, change):
    """A copy of the archive ``path`` with ``member`` replaced by ``change(its bytes)``."""
    with zipfile.ZipFile(path) as zf:
        members = {name: zf.read(name) for name in zf.namelist()}
    members[member] = change(members[member])
    out = path.with_name("changed.zip")
    with zipfile.ZipFile(out, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return out


def header_with(**changes):
    return lambda data: json.dumps({**json.loads(data), **changes}).encode()


def zeros_npy(data):
    buffer = io.BytesIO()
    np.save(buffer, np.zeros_like(np.load(io.BytesIO(data))))
    return buffer.getvalue()


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A SQLite file holding ``build``'s studies, and the archive of ``src``."""
    folder = tmp_path_factory.mktemp("built")
    db = f"sqlite:///{folder / 'hpo.db'}"
    build(RDBStorage(db))
    return folder / "hpo.db", export_archive("src", folder / "src.zip", db)


@pytest.fixture
def exported(built, db, tmp_path):
    """A copy of ``built`` in ``db``; the archive of its ``src``, in ``tmp_path``."""
    source, dest = sqlite3.connect(built[0]), sqlite3.connect(db.split(":///", 1)[1])
    source.backup(dest)
    source.close()
    dest.close()
    return shutil.copy(built[1], tmp_path / "src.zip")


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p, "study 'src' already exists in sqlite:///"),
        (lambda p: p.with_name("none.zip"), "no archive at "),
        (lambda p: p.parent, "no archive at "),
        (lambda p: (p.with_name("x.txt").write_text("hi"), p.with_name("x.txt"))[1], "is not an"),
        (lambda p: rewrite(p, "archive.json", lambda d: b"[1]"), "is not an hpo_nb archive"),
        (lambda p: rewrite(p, "archive.json", header_with(format="x")), "is not an hpo_nb"),
        (
            lambda p: rewrite(p, "archive.json", header_with(version=2)),
            "is archive version 2, newer than this hpo_nb reads (version 1): upgrade hpo_nb",
        ),
        (lambda p: rewrite(p, "trials.jsonl", lambda d: d[:-40]), "is a damaged hpo_nb archive"),
        (lambda p: rewrite(p, "archive.json", header_with(n_trials=3)), "where 3 were written"),
        (lambda p: rewrite(p, "intermediate_value.npy", lambda d: b""), "damaged"),
    ],
)
def test_bad_archives_are_refused_in_one_line(exported, db, make, message):
    with pytest.raises(HpoError, match=re.escape(message)) as info:
        import_archive(make(exported), db)
    assert "\n" not in str(info.value)
    assert optuna.get_all_study_names(db) == ["src", "pair"]


def test_bad_exports_are_refused_in_one_line(exported, db, tmp_path):
    for call, message in [
        (lambda: export_archive("nope", tmp_path / "x.zip", db), "no study 'nope' in sqlite:///"),
        (lambda: export_archive("src", tmp_path / "no" / "x.zip", db), "folder"),
        (lambda: export_archive("src", tmp_path, db), "it is a folder"),
    ]:
        with pytest.raises(HpoError, match=re.escape(message)) as info:
            call()
        assert "\n" not in str(info.value)


def count_rows(db):
    conn = sqlite3.connect(db.split(":///", 1)[1])
    tables = ("studies", "trials", "trial_params", "trial_intermediate_values")
    counts = [conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in tables]
    conn.close()
    return counts


def test_a_failed_import_leaves_nothing_behind(exported, db, monkeypatch):
    before = count_rows(db)
    # The database refuses the last rows written (a step twice in one trial): all undone.
    broken = rewrite(exported, "intermediate_step.npy", zeros_npy)
    with pytest.raises(HpoError, match="cannot import study 'copy' into sqlite:///") as info:
        import_archive(broken, db, study="copy")
    assert "\n" not in str(info.value)
    assert count_rows(db) == before
    # An interrupt in the middle of the import: all undone as well.
    real = archive_module._attr_rows
    calls = []

    def interrupted(*args):
        calls.append(1)
        if len(calls) == 10:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(archive_module, "_attr_rows", interrupted)
    with pytest.raises(KeyboardInterrupt):
        import_archive(exported, db, study="copy")
    assert count_rows(db) == before
    monkeypatch.undo()
    import_archive(exported, db, study="copy")
    assert_same_study(db, "src", db, "copy")


@pytest.mark.kernel
def test_the_magics_export_and_import(tmp_path):
    db = f"sqlite:///{tmp_path / 'hpo.db'}"
    build(RDBStorage(db))
    k = Kernel(str(tmp_path))
    try:
        k.ok("%load_ext hpo_nb")
        out = k.ok("%hpo_export src --archive src.zip").stdout
        assert re.fullmatch(r"wrote src\.zip \(0\.\d\d MiB\)\n", out), out
        out = k.ok("%hpo_export pair --format json --out best.json --archive pair.zip").stdout
        assert out.startswith("wrote best.json\nwrote pair.zip (")
        assert k.ok("%hpo_import src.zip --study copy").stdout == (
            "imported study 'copy' from src.zip\n"
        )
        k.ok("%hpo_import pair.zip --storage other.db")
        for cell, message in [
            ("%hpo_import src.zip", "study 'src' already exists in sqlite:///hpo.db: pass --study"),
            ("%hpo_import nothere.zip", "no archive at nothere.zip"),
            ("%hpo_import best.json", "best.json is not an hpo_nb archive"),
            ("%hpo_import", "the following arguments are required: path"),
            ("%hpo_export nope --archive x.zip", "no study 'nope'"),
            ("%hpo_export src", "or --archive PATH"),
            ("%hpo_export src --archive nodir/x.zip", "folder nodir does not exist"),
            ("%hpo_export src --archive", "argument --archive: expected one argument"),
        ]:
            assert message in k.usage_error(cell)
    finally:
        k.shutdown()
    assert_same_study(db, "src", db, "copy")
    assert_same_study(db, "pair", f"sqlite:///{tmp_path / 'other.db'}", "pair")


@pytest.mark.database
def test_the_fast_reader_gives_what_optuna_reads(any_db):
    """``load_trials`` (what runs and panels load a study with) equals Optuna's own read,
    trial ids included, in every state and on every backend."""
    from hpo_nb.io.archive import load_trials

    storage = RDBStorage(any_db)
    build(storage)
    for name in ("src", "pair"):
        study_id = storage.get_study_id_from_name(name)
        fast = list(load_trials(storage, study_id))
        slow = storage.get_all_trials(study_id, deepcopy=False)
        assert [t._trial_id for t in fast] == [t._trial_id for t in slow]
        assert [fields(t) for t in fast] == [fields(t) for t in slow]


@pytest.mark.database
def test_the_fast_reader_reads_a_chunk_at_a_time_from_one_snapshot(any_db, monkeypatch):
    """``load_trials`` is lazy: it reads the trials a few at a time (a large study is never
    held twice by a caller that keeps what it loads), yet all from the snapshot of its first
    read, while the study goes on changing."""
    from hpo_nb.io.archive import load_trials
    from hpo_nb.io.storage import open_storage

    monkeypatch.setattr(archive_module, "_CHUNK", 3)
    storage = open_storage(any_db)  # SQLite in WAL mode: a writer goes on beside the reader
    build(storage)
    study_id = storage.get_study_id_from_name("src")
    before = storage.get_all_trials(study_id, deepcopy=False)
    assert len(before) == 14  # five chunks
    reads = []
    read_chunk = archive_module._load_chunk
    monkeypatch.setattr(
        archive_module,
        "_load_chunk",
        lambda conn, heads, *args: reads.append(len(heads)) or read_chunk(conn, heads, *args),
    )
    loading = load_trials(storage, study_id)
    first = next(loading)
    assert reads == [3]  # the first chunk only
    waiting = before[-1]
    assert waiting.state == TrialState.WAITING
    storage.set_trial_system_attr(waiting._trial_id, "taken", True)  # in the last chunk
    optuna.load_study(study_name="src", storage=storage).enqueue_trial({"x": 0.5})
    loaded = [first, *loading]
    assert reads == [3, 3, 3, 3, 2]
    assert [t._trial_id for t in loaded] == [t._trial_id for t in before]
    assert [fields(t) for t in loaded] == [fields(t) for t in before]
    assert len(storage.get_all_trials(study_id)) == 15


def test_a_mirror_holds_the_study_as_optuna_would(db):
    """The run-side copy of a study holds what copying Optuna's own read of every finished and
    WAITING trial into memory gives (numbered from 0 there, best trial included), and what
    Optuna hands out of it is a copy."""
    from hpo_nb.engine.mirror import Mirror
    from hpo_nb.io.storage import open_storage

    storage = open_storage(db)
    build(storage)
    for name in ("src", "pair"):
        study_id = storage.get_study_id_from_name(name)
        reference = optuna.create_study(
            storage=InMemoryStorage(), directions=storage.get_study_directions(study_id)
        )
        read = storage.get_all_trials(study_id)
        kept = [t for t in read if t.state.is_finished() or t.state == TrialState.WAITING]
        reference.add_trials(kept)
        mirror = Mirror(
            storage, name, optuna.samplers.RandomSampler(seed=0), optuna.pruners.NopPruner()
        )
        try:
            held = mirror.study.get_trials(deepcopy=False)
            assert all(type(t) is FrozenTrial for t in held)
            assert [fields(t) for t in held] == [fields(t) for t in reference.trials]
            assert [mirror.storage_number(t.number) for t in held] == [t.number for t in kept]
            assert [t.number for t in mirror.study.best_trials] == [
                t.number for t in reference.best_trials
            ]
            assert mirror.distributions == {
                k: v for t in kept if t.state.is_finished() for k, v in t.distributions.items()
            }
            handed = mirror.study.trials[0]
            handed.intermediate_values[0] = 123.0
            handed.distributions.clear()
            assert fields(mirror.study.get_trials(deepcopy=False)[0]) == fields(held[0])
            assert fields(held[0]) == fields(reference.trials[0])
        finally:
            mirror.close()


# -- archives that would take the kernel's memory ----------------------------------------------
def small_header(**changes) -> bytes:
    """The ``archive.json`` of an empty study (no trials, no intermediate values)."""
    header = {
        "format": archive_module.FORMAT,
        "version": archive_module.VERSION,
        "study": {"name": "s", "directions": ["MINIMIZE"], "user_attrs": {}, "system_attrs": {}},
        "distributions": [],
        "n_trials": 0,
        "n_intermediate_values": 0,
    }
    return json.dumps({**header, **changes}).encode()


def npy_bytes(array) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def empty_members() -> dict[str, bytes]:
    return {
        "archive.json": small_header(),
        "trials.jsonl": b"",
        "intermediate_trial.npy": npy_bytes(np.zeros(0, "<i8")),
        "intermediate_step.npy": npy_bytes(np.zeros(0, "<i8")),
        "intermediate_value.npy": npy_bytes(np.zeros((8, 0), "u1")),
    }


@pytest.fixture(scope="module")
def bomb(tmp_path_factory):
    """A 4.5 MiB archive whose ``intermediate_value.npy`` holds 1 GiB (zeros, deflated)."""
    path = tmp_path_factory.mktemp("bomb") / "bomb.zip"
    members = empty_members()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for name, data in members.items():
            if name != "intermediate_value.npy":
                zf.writestr(name, data)
        with zf.open("intermediate_value.npy", "w") as f:
            f.write(members["intermediate_value.npy"])
            chunk = bytes(2**20)
            for _ in range(1024):
                f.write(chunk)
    assert path.stat().st_size < 5 * 2**20
    return path


def refused_reading(path, message):
    """Read ``path``: it must be refused in one line matching ``message``; returns the peak of
    memory the attempt took (tracemalloc sees NumPy's buffers and zlib's output too)."""
    tracemalloc.start()
    try:
        with pytest.raises(HpoError, match=message) as info:
            read_archive(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "\n" not in str(info.value)
    return peak


def test_an_archive_that_would_expand_past_the_limit_is_refused_unread(bomb):
    peak = refused_reading(bomb, r"would expand to 1,07\d,\d{3},\d{3} bytes, over the 1\.0 GiB")
    assert peak < 2 * 2**20  # the member is never read (it takes 1 GiB, and 6 s)


def test_an_array_larger_than_its_count_is_refused_unread(bomb, monkeypatch):
    """Under a larger limit, the array's declared size is checked against the 8 bytes each
    of the header's intermediate values take, before the array is read."""
    monkeypatch.setattr(archive_module, "MAX_SIZE", 4 * 2**30)
    message = r"intermediate_value\.npy declares 107\d+ bytes where 0 intermediate values take 0"
    assert refused_reading(bomb, message) < 2 * 2**20


def declare(path, member, size):
    """Make the ZIP at ``path`` declare ``size`` bytes for ``member`` (uncompressed), in its
    local header and in the central directory, as a crafted file could."""
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(member)
        central = zf.start_dir
    data[info.header_offset + 22 : info.header_offset + 26] = size.to_bytes(4, "little")
    at = data.index(b"PK\x01\x02" + data[central + 4 : central + 6], central)
    while data[at + 46 : at + 46 + len(member)] != member.encode():
        name, extra, comment = (
            int.from_bytes(data[at + k : at + k + 2], "little") for k in (28, 30, 32)
        )
        at += 46 + name + extra + comment
    data[at + 24 : at + 28] = size.to_bytes(4, "little")
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("member", ["trials.jsonl", "intermediate_value.npy"])
def test_a_member_that_holds_more_than_it_declares_is_refused(tmp_path, member):
    """A header that lies about a member's size gets no further than the size it declares:
    64 MiB behind a declared 200 bytes are never read."""
    members = empty_members()
    members[member] += b" " * (64 * 2**20)
    path = tmp_path / "lying.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    declare(path, member, 200)
    assert zipfile.ZipFile(path).getinfo(member).file_size == 200
    peak = refused_reading(path, rf"is a damaged hpo_nb archive: .*{re.escape(member)}")
    assert peak < 2 * 2**20


def npy_header(descr: str, shape: str) -> bytes:
    """A .npy file of format 1.0 with this header and no data (what a crafted one may say)."""
    text = f"{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}"
    text += " " * (-(10 + len(text) + 1) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text.encode()


@pytest.mark.parametrize(
    ("descr", "shape", "message"),
    [
        ("<i8", "(1000000000,)", r"intermediate_step\.npy has shape \(1000000000,\), not \(0,\)"),
        ("|O", "(0,)", r"intermediate_step\.npy holds object, not int64"),
    ],
    ids=["a billion rows", "pickled objects"],
)
def test_the_npy_header_is_checked_before_its_data_is_read(tmp_path, descr, shape, message):
    """An array whose own header claims a billion rows (in an archive that declares none), or
    pickled objects, is refused on its header: nothing is allocated or unpickled for it."""
    members = empty_members()
    members["intermediate_step.npy"] = npy_header(descr, shape)
    assert np.load(io.BytesIO(npy_header("<i8", "(0,)"))).shape == (0,)  # a valid header
    path = tmp_path / "shape.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    assert refused_reading(path, message) < 2**20


def test_a_value_optuna_stored_out_of_its_range_is_archived_as_it_is(tmp_path):
    """Optuna stores an enqueued value outside its distribution (with a warning): the archive
    keeps it rather than refusing the study; a categorical index past its choices, which no
    storage holds, is refused (tests/reliability/test_catalogue.py)."""
    memory = InMemoryStorage()
    study = optuna.create_study(storage=memory, study_name="s")
    study.enqueue_trial({"x": 5.0})
    with pytest.warns(UserWarning, match="out of range"):
        study.optimize(lambda t: t.suggest_float("x", -1.0, 1.0), n_trials=1)
    path = write_archive(memory, memory.get_study_id_from_name("s"), tmp_path / "s.zip")
    assert read_archive(path).trials[0].params == {"x": 5.0}

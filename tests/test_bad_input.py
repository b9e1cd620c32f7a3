"""Bad input, end to end: the corpus of tests/make_bad_corpus.py through ``tagger tag`` (CLI, real
Ray, the tiny test model), real run and ``--dry-run``.

For every case: the run finishes; the file gets the action, error kind and reason that
``make_bad_corpus.CASES`` promise (and docs/bad-input.md shows); the exit code is 2 because some
files failed; no other file changes (every file's bytes are identical, except the tagged ones,
whose decoded audio and other tags are identical); nothing is left behind in the folders.

Situations the harness makes around a good file:

* deleted / modified between the analysis and the write, deleted between the scan and the
  analysis: ``Tagger._finish_analysed`` / ``tagger.pipeline.make_plan`` wrapped (monkeypatch);
* unreadable and read-only files: tests run as root, and root ignores permission bits, so the
  worker analyses as the user ``nobody`` (a worker double, tests/bad_input_helpers.py) and the
  driver writes as ``nobody`` (``tags.write_genres`` wrapped in a seteuid block): the real
  permission checks and the real open() calls meet the permission bits;
* the disk filling up during the write: a tmpfs with room for the file but not for its copy,
  mounted for the test where the test may mount (root with CAP_SYS_ADMIN: a real ENOSPC), and
  everywhere RLIMIT_FSIZE lowered in the driver process (EFBIG, the same code path).

Plus: the worker's peak memory on the 2-hour file, and a property-based test (hypothesis) of the
per-file boundary, ``tagger.analyse.analyse_file``, on mutated real files.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

import pytest

from tests.bad_input_helpers import (
    effective_user,
    file_state,
    genres_of,
    install_double,
    matches,
    report_rows,
    run_cli,
    snapshot,
    tag_args,
)
from tests.make_bad_corpus import (
    CASES,
    ODD_NAMES,
    SITUATIONS,
    faults_table,
    make_bad_corpus,
    markdown_table,
)

pytestmark = [pytest.mark.usefixtures("ray_session"), pytest.mark.tf, pytest.mark.ray]

ROOT = Path(__file__).resolve().parents[1]
IS_ROOT = os.geteuid() == 0
#: the situations each test below makes (the main corpus run makes the rest)
OWN_TESTS = {"unreadable", "read-only", "disk-full"}


@pytest.fixture(scope="module")
def corpus_template(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("bad-corpus")
    make_bad_corpus(d)
    return d


def copy_corpus(template: Path, dest: Path, *, names=None) -> Path:
    """A private copy of the corpus (symbolic links copied as links), optionally only ``names``."""
    if names is None:
        shutil.copytree(template, dest, symlinks=True)
        for c in SITUATIONS.values():
            if c.situation in OWN_TESTS:
                (dest / c.name).unlink()
        return dest
    dest.mkdir(parents=True)
    for name in names:
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(template / name, dest / name)
    return dest


def check_rows(rows: dict, cases, *, dry_run: bool) -> None:
    """Every case got exactly its expected action, error kind and one-line reason (all
    mismatches are listed at once)."""
    wrong = []
    for c in cases:
        want = c.dry_action if dry_run else c.action
        row = rows.get(c.name)
        if want is None:
            if row is not None:
                wrong.append(f"{c.name!r}: should get no row, got {row['action']} ({row['reason']})")
            continue
        if row is None:
            wrong.append(f"{c.name!r}: missing from the report")
            continue
        got = f"{row['action']} [{row.get('error_kind')}] ({row['reason']})"
        if row["action"] != want:
            wrong.append(f"{c.name!r}: {got}, expected {want}")
        elif not row["reason"] or "\n" in row["reason"] or len(row["reason"]) > 300:
            wrong.append(f"{c.name!r}: reason is not one short line: {row['reason']!r}")
        elif (kind := c.kind if want in ("failed", "skipped") else None) and (
                row["error_kind"] != kind or not matches(row["reason"], c.reason)):
            wrong.append(f"{c.name!r}: {got}, expected [{c.kind}] with {c.reason!r}")
        elif not kind and row.get("error_kind"):
            wrong.append(f"{c.name!r}: {got} has an error kind")
    assert not wrong, "\n".join(["rows differ from make_bad_corpus.CASES:", *wrong])


def check_files(before: dict, after: dict, rows: dict, *, changed_by_harness: dict) -> None:
    """Tagged files: same audio, same other tags; every other file: same bytes. No new files."""
    gone = {k for k, v in changed_by_harness.items() if v is None}
    assert set(after) == set(before) - gone, f"appeared or vanished: {set(after) ^ (set(before) - gone)}"
    for name, old in before.items():
        if name in gone:
            continue
        new = after[name]
        if name in changed_by_harness:
            assert new == changed_by_harness[name], f"{name!r} changed after the harness changed it"
            continue
        if rows.get(name, {}).get("action") == "tagged":
            assert new["audio"] is not None and new["audio"] == old["audio"], f"{name!r}: audio changed"
            assert new["tags"] == old["tags"], f"{name!r}: other tags changed"
            assert new["mode"] == old["mode"], f"{name!r}: permissions changed"
        else:
            assert new == old, f"{name!r} ({rows.get(name, {}).get('action')}) changed"


def harness_hooks(monkeypatch, lib: Path) -> dict[str, dict | None]:
    """Delete / modify files between the stages; returns {name: state after the harness (None:
    deleted)} for check_files."""
    import mutagen

    from tagger import pipeline

    changed: dict[str, dict | None] = {}
    by_situation = {c.situation: c.name for c in SITUATIONS.values()}

    real_plan = pipeline.make_plan

    def plan_then_delete(*args, **kwargs):
        plan = real_plan(*args, **kwargs)
        name = by_situation["deleted-before-analysis"]
        (lib / name).unlink()
        changed[name] = None
        return plan

    real_finish = pipeline.Tagger._finish_analysed

    def change_then_finish(self, scored, found, *args, **kwargs):
        rel = Path(scored.path).relative_to(lib).as_posix()
        if rel in changed:  # album mode finishes a track twice: held, then decided with its album
            pass
        elif rel == by_situation["deleted-before-write"]:
            os.unlink(scored.path)
            changed[rel] = None
        elif rel == by_situation["modified-before-write"]:
            f = mutagen.File(scored.path)  # a person edits the title meanwhile
            f["title"] = ["Edited by a person meanwhile"]
            f.save()
            changed[rel] = file_state(Path(scored.path))
        return real_finish(self, scored, found, *args, **kwargs)

    monkeypatch.setattr(pipeline, "make_plan", plan_then_delete)
    monkeypatch.setattr(pipeline.Tagger, "_finish_analysed", change_then_finish)
    return changed


# --------------------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("dry_run", [False, True], ids=["real", "dry-run"])
def test_bad_corpus_end_to_end(corpus_template, tmp_path, tiny_model, monkeypatch, dry_run):
    lib = copy_corpus(corpus_template, tmp_path / "lib")
    before = snapshot(lib)
    changed = harness_hooks(monkeypatch, lib)
    report = tmp_path / "report.json"
    extra = ["--report", str(report), "--report", str(tmp_path / "report.csv")]
    paths = [lib]
    if dry_run:
        # a name starting with dashes given on the command line (after --), relative to the
        # current folder, and a second time through the folder: reported once
        dash = next(c.name for c in CASES.values() if c.what == "name starting with dashes")
        monkeypatch.chdir(lib / Path(dash).parent)
        extra = ["--dry-run", *extra, "--", Path(dash).name]
    r = run_cli(tag_args(paths, tiny_model, tmp_path / "state.db", *extra))
    assert r.exit_code == 2, r.output
    rows = report_rows(report, lib)
    cases = [c for c in CASES.values() if c.situation not in OWN_TESTS]
    check_rows(rows, cases, dry_run=dry_run)
    assert set(rows) <= {c.name for c in cases}, f"unexpected rows: {set(rows) - {c.name for c in cases}}"
    after = snapshot(lib)
    check_files(before, after, rows, changed_by_harness=changed)
    if not dry_run:
        for name, row in rows.items():
            if row["action"] == "tagged":
                assert genres_of(lib / name) == row["written"], name
    counts = json.loads(report.read_text())["counts"]
    assert counts["failed"] == sum(1 for c in cases if (c.dry_action if dry_run else c.action) == "failed")
    # the CSV report survives names with newlines and commas: one record per row
    with open(tmp_path / "report.csv", newline="", encoding="utf-8") as f:
        assert len(list(csv.DictReader(f))) == len(rows)
    summary = [line for line in r.output.splitlines() if "files:" in line]
    assert summary and "failed" in summary[-1], r.output


# --------------------------------------------------------------------------------------------------
# permissions: as the user nobody


@pytest.mark.skipif(not IS_ROOT, reason="makes files owned by root unreadable for nobody (needs root)")
@pytest.mark.parametrize("dry_run", [False, True], ids=["real", "dry-run"])
def test_unreadable_and_read_only_files(corpus_template, tiny_model, monkeypatch, dry_run):
    from tagger import tags

    unreadable, read_only = SITUATIONS["unreadable"], SITUATIONS["read-only"]
    good = ODD_NAMES["name-spaces"]
    with shared_dir() as d:
        lib = copy_corpus(corpus_template, d / "lib", names=[unreadable.name, read_only.name, good])
        for p in [lib, *lib.rglob("*")]:
            os.chown(p, 65534, 65534)  # the library belongs to the user running tagger...
        (lib / unreadable.name).chmod(0o000)  # ...except one file nobody may read
        os.chown(lib / unreadable.name, 0, 0)
        (lib / read_only.name).chmod(0o444)
        before = snapshot(lib)
        warm = str(lib / good)
        install_double(monkeypatch, {"*": "as-nobody"}, state_dir=d, warm_up=warm)
        real_write = tags.write_genres

        def write_as_nobody(*args, **kwargs):
            with effective_user():
                return real_write(*args, **kwargs)

        monkeypatch.setattr(tags, "write_genres", write_as_nobody)
        report = d / "report.json"
        extra = ["--report", str(report)] + (["--dry-run"] if dry_run else [])
        r = run_cli(tag_args([lib], tiny_model, d / "state.db", *extra))
        assert r.exit_code == 2, r.output
        rows = report_rows(report, lib)
        check_rows(rows, [unreadable, read_only], dry_run=dry_run)
        assert rows[good]["action"] == ("would tag" if dry_run else "tagged"), rows[good]
        check_files(before, snapshot(lib), rows, changed_by_harness={})


@contextlib.contextmanager
def shared_dir():
    """A temporary folder the user nobody can reach (pytest's tmp_path is below a 0700 folder)."""
    d = Path(tempfile.mkdtemp(prefix="tagger-bad-input-", dir="/tmp"))
    d.chmod(0o755)
    try:
        yield d
    finally:
        for p in [d, *d.rglob("*")]:
            if not p.is_symlink():
                with contextlib.suppress(OSError):
                    p.chmod(0o755 if p.is_dir() else 0o644)
        shutil.rmtree(d, ignore_errors=True)


# --------------------------------------------------------------------------------------------------
# the disk fills up during the write


@contextlib.contextmanager
def tiny_tmpfs(size: str):
    """A tmpfs of ``size`` mounted on a fresh folder, or None where mounting is not allowed."""
    d = Path(tempfile.mkdtemp(prefix="tagger-full-disk-"))
    try:
        res = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(d)],
                             capture_output=True, text=True) if IS_ROOT and shutil.which("mount") else None
    except OSError:
        res = None
    mounted = res is not None and res.returncode == 0
    try:
        yield d if mounted else None
    finally:
        if mounted:
            subprocess.run(["umount", str(d)], check=False)
        shutil.rmtree(d, ignore_errors=True)


@contextlib.contextmanager
def file_size_limit(limit: int):
    """RLIMIT_FSIZE for this (driver) process: writing past ``limit`` bytes fails with EFBIG
    (SIGXFSZ ignored meanwhile, as a daemon would). Ray's workers are not children of this
    process (the session's Ray is already running), so only the driver's writes are limited."""
    old = resource.getrlimit(resource.RLIMIT_FSIZE)
    old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, old[1]))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, old)
        signal.signal(signal.SIGXFSZ, old_handler)


def _disk_full_run(lib: Path, tiny_model, state_dir: Path, *, dry_run: bool, limit=None):
    case = SITUATIONS["disk-full"]
    before = snapshot(lib)
    report = state_dir / "report.json"
    args = tag_args([lib], tiny_model, state_dir / "state.db", "--report", str(report),
                    *(["--dry-run"] if dry_run else []))
    with file_size_limit(limit) if limit else contextlib.nullcontext():
        r = run_cli(args)
    assert r.exit_code == case.dry_exit_code if dry_run else case.exit_code, r.output
    rows = report_rows(report, lib)
    check_rows(rows, [case], dry_run=dry_run)
    check_files(before, snapshot(lib), rows, changed_by_harness={})
    return rows[case.name]


@pytest.mark.parametrize("dry_run", [False, True], ids=["real", "dry-run"])
def test_disk_full_during_write_tmpfs(corpus_template, tmp_path, tiny_model, dry_run):
    case = SITUATIONS["disk-full"]
    size = (corpus_template / case.name).stat().st_size
    with tiny_tmpfs(f"{size * 3 // 2 // 1024}k") as mnt:  # room for the file, not for its copy
        if mnt is None:
            pytest.skip("cannot mount a tmpfs here (needs root with CAP_SYS_ADMIN); "
                        "test_disk_full_during_write_rlimit covers the same path")
        lib = copy_corpus(corpus_template, mnt / "lib", names=[case.name])
        row = _disk_full_run(lib, tiny_model, tmp_path, dry_run=dry_run)
    if not dry_run:
        assert "disk full" in row["reason"], row


def test_disk_full_during_write_rlimit(corpus_template, tmp_path, tiny_model):
    case = SITUATIONS["disk-full"]
    lib = copy_corpus(corpus_template, tmp_path / "lib", names=[case.name])
    size = (lib / case.name).stat().st_size
    row = _disk_full_run(lib, tiny_model, tmp_path, dry_run=False, limit=size // 2)
    assert "file size limit" in row["reason"], row


# --------------------------------------------------------------------------------------------------
# memory of a very long track


@pytest.mark.slow
def test_two_hour_file_memory_stays_bounded(corpus_template):
    """The worker's job on the 2-hour file, in a fresh process: peak RSS grows by far less than
    the decoded track would need (2 h at 8 kHz float32 = 230 MB); at most max_analysis_seconds
    (900 s) is decoded, by seeking."""
    from tests.conftest import TINY_FEATURES

    code = f"""
import json, os, sys, resource
sys.path.insert(0, {str(ROOT)!r})
from tagger.analyse import analyse_file
from tagger.features import FeatureParams
params = FeatureParams(**{TINY_FEATURES!r}).to_dict()
policy = dict(model_id="x", on_existing="skip", analysis_seconds=None, max_seconds=900.0)
def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
warm = analyse_file({str(corpus_template / ODD_NAMES["name-spaces"])!r}, params=params, policy=policy)
assert warm.error is None, warm.error
base = status("VmRSS")
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # reset the peak (VmHWM) to the current RSS
res = analyse_file({str(corpus_template / "two-hours.flac")!r}, params=params, policy=policy)
print(json.dumps(dict(error=res.error, duration=res.duration, analysed=res.heard, chunks=res.chunks,
                      growth=status("VmHWM") - base)))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert out.returncode == 0, out.stderr[-3000:]
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res["error"] is None
    assert res["duration"] == pytest.approx(7200, abs=1)
    assert 880 <= res["analysed"] <= 920, res
    whole_track = 7200 * TINY_FEATURES["sample_rate"] * 4
    print("two-hour file:", res)
    assert res["growth"] < 100 * 2**20, f"peak RSS grew by {res['growth'] / 2**20:.0f} MiB"
    assert res["growth"] < whole_track / 2


# --------------------------------------------------------------------------------------------------
# the docs page is in step with the expectations


def test_docs_table_matches_the_expectations():
    page = (ROOT / "docs" / "bad-input.md").read_text(encoding="utf-8")
    for table in (markdown_table(), faults_table()):
        assert table in page, (
            "docs/bad-input.md is out of step with CASES / FAULTS in tests/make_bad_corpus.py: paste "
            "the output of `python -c 'from tests.make_bad_corpus import markdown_table, faults_table; "
            "print(markdown_table()); print(faults_table())'`")


# --------------------------------------------------------------------------------------------------
# property: the per-file boundary never raises


ERROR_KINDS = {"decode", "audio", "tag-read"}  # what the worker's job can report


@pytest.fixture(scope="module")
def seed_files(tmp_path_factory) -> dict[tuple[str, str], bytes]:
    from tests.make_fixtures import make_fixtures

    made = make_fixtures(tmp_path_factory.mktemp("seeds"))
    return {(kind, state): made[kind][state].read_bytes() for kind in made for state in ("bare", "genre")}


def _mutate(data: bytes, ops) -> bytes:
    b = bytearray(data)
    for op in ops:
        at = int(op[1] * len(b)) if b else 0
        if op[0] == "truncate":
            del b[at:]
        elif op[0] == "flip" and b:
            b[min(at, len(b) - 1)] ^= op[2]
        elif op[0] == "zero":
            b[at : at + op[2]] = bytes(len(b[at : at + op[2]]))
        elif op[0] == "insert":
            b[at:at] = op[2]
        elif op[0] == "delete":
            del b[at : at + op[2]]
        elif op[0] == "head":
            b[: len(op[2])] = op[2]
    return bytes(b)


def _mutations():
    from hypothesis import strategies as st

    frac = st.floats(0, 1, allow_nan=False)
    return st.lists(st.one_of(
        st.tuples(st.just("truncate"), frac),
        st.tuples(st.just("flip"), frac, st.integers(1, 255)),
        st.tuples(st.just("zero"), frac, st.integers(1, 8192)),
        st.tuples(st.just("insert"), frac, st.binary(min_size=1, max_size=64)),
        st.tuples(st.just("delete"), frac, st.integers(1, 8192)),
        st.tuples(st.just("head"), st.just(0.0), st.binary(min_size=1, max_size=48)),
    ), min_size=1, max_size=4)


def test_analyse_file_never_raises_on_mutated_files(seed_files, tmp_path_factory):
    """Mutated real files of every format (truncated, bit-flipped, zeroed, spliced, a garbled
    header, under their own or another extension) through tagger.analyse.analyse_file: it never
    raises; a problem comes back as (kind, one-line reason); features are finite and shaped for
    the model; the file is only read."""
    import numpy as np
    from hypothesis import HealthCheck, event, given, settings
    from hypothesis import strategies as st

    from tagger.analyse import analyse_file
    from tagger.features import FeatureParams
    from tests.conftest import TINY_FEATURES
    from tests.make_fixtures import EXT

    fp = FeatureParams(**TINY_FEATURES)
    params = fp.to_dict()
    work = tmp_path_factory.mktemp("mutated")
    exts = sorted(set(EXT.values()))
    seen: Counter = Counter()

    @settings(max_examples=250, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(seed=st.sampled_from(sorted(seed_files)), ops=_mutations(), own_ext=st.booleans(),
           other_ext=st.sampled_from(exts), on_existing=st.sampled_from(["skip", "replace"]),
           analysis_seconds=st.sampled_from([None, 1.0]))
    def check(seed, ops, own_ext, other_ext, on_existing, analysis_seconds):
        data = _mutate(seed_files[seed], ops)
        path = work / ("mutated" + (EXT[seed[0]] if own_ext else other_ext))
        path.write_bytes(data)
        policy = {"model_id": "0123456789abcdef", "on_existing": on_existing,
                  "analysis_seconds": analysis_seconds, "max_seconds": 900.0}
        out = analyse_file(str(path), params=params, policy=policy)  # must not raise
        outcome = f"error {out.error.kind}" if out.error else "skipped" if out.skip else "analysed"
        event(outcome)
        seen[outcome] += 1
        assert path.read_bytes() == data
        if out.error is not None:
            kind, reason = out.error
            assert kind in ERROR_KINDS, out.error
            assert isinstance(reason, str) and reason.strip() and "\n" not in reason, reason
            assert len(reason) <= 300, reason
            assert out.features is None
        elif out.skip is None:
            x = out.features
            assert isinstance(x, np.ndarray) and x.ndim == 3 and x.shape[0] >= 1, out
            assert x.shape[1:] == fp.input_shape and np.all(np.isfinite(x))
        else:
            assert isinstance(out.skip, str) and out.features is None
        path.unlink()

    check()
    # the mutations reach every stage: some files still analyse, others fail in each way
    print("mutated files:", dict(seen))
    assert seen["analysed"] >= 20 and seen["error tag-read"] >= 20 and seen["error decode"] >= 5, seen

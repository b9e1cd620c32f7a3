#!/usr/bin/env python
"""Generate the bad-input corpus: the broken, odd and hostile files a real music library holds.

    python tests/make_bad_corpus.py DEST_DIR

or, from Python, ``make_bad_corpus(dest_dir) -> {case name: Path}``.

Every case is listed in :data:`CASES` together with what ``tagger tag`` must do with it (action,
error kind, words of the reason, exit code). The tests (``tests/test_bad_input.py``) assert
exactly these expectations and ``docs/bad-input.md`` carries the table :func:`markdown_table`
renders from them (a test checks the page is in step), so the three cannot drift apart.

Most cases are plain files. A few are *situations* the test harness creates around a plain file
(``Case.situation``): a file unreadable or read-only for the user running tagger, a file deleted
or modified between the scan and the write, a disk that fills up during the write. The script
writes the file; the test makes the situation.

Sources are the tiny real files of :mod:`tests.make_fixtures` (every format, 1.5 s) plus a few
generated with soundfile. Everything is seeded: the same library versions give the same bytes.
Nothing here imports tagger: the files are made the way other software (and accidents) make them.
"""

from __future__ import annotations

import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: Formats of the "truncated in the middle" cases and the fixture kind each is cut from.
TRUNCATED_KINDS = {
    "mp3": "mp3", "flac": "flac", "ogg": "ogg", "opus": "opus", "m4a": "m4a_aac",
    "wav": "wav", "aiff": "aiff", "wma": "wma",
}
#: The longer Ogg files cut in the middle of a later page (several complete pages of audio left).
LONG_OGG = ("ogg", "opus")
LONG_OGG_SECONDS = 6.0
#: The two-hour file: 8 kHz mono FLAC, digital silence with a 5 s tone burst every 30 s
#: (silence compresses to almost nothing, so it is about 5 MB, written in about a second).
LONG_SECONDS = 2 * 3600
LONG_RATE = 8000
#: Names that break naive shell scripts and report writers (each holds a good WAV or FLAC).
ODD_NAMES = {
    "name-spaces": "odd names/  two  spaces .wav",
    "name-unicode": "odd names/Ünïcødé – 曲名 🎵.flac",
    "name-newline": "odd names/new\nline.wav",
    "name-dash": "odd names/-n --help.wav",
}


TITLE = "Bad input test"
ARTIST = "Tagger Test Ensemble"


@dataclass(frozen=True)
class Case:
    """One kind of bad input and what tagger must do with it.

    ``action``/``dry_action``: the report's action in a real run / in ``--dry-run``; ``None`` means
    the file gets no row at all (nothing to report). ``kind``: the report's ``error_kind`` of a
    failed file. ``reason``: words the report's one-line reason must contain (case-insensitive;
    ``|`` separates alternatives). ``situation``: made by the test harness, not by this script.
    """

    name: str  # path relative to the corpus folder
    what: str  # the input, in words (first column of the docs table)
    action: str | None
    dry_action: str | None
    kind: str | None = None
    reason: str = ""
    situation: str | None = None
    note: str = ""

    @property
    def exit_code(self) -> int:
        """The exit code of a run over this case alone (plus good files)."""
        return 2 if self.action == "failed" else 0

    @property
    def dry_exit_code(self) -> int:
        return 2 if self.dry_action == "failed" else 0


def _cases() -> list[Case]:
    tagged = dict(action="tagged", dry_action="would tag")

    def failed(kind: str, reason: str, *, dry: str = "failed") -> dict:
        return dict(action="failed", dry_action=dry, kind=kind, reason=reason)

    out = [Case("zero-bytes.mp3", "zero-byte file", **failed("decode", "empty file (0 bytes)"))]
    truncated = {
        # MP3 frames, FLAC frames and ASF packets are self-delimiting: what is left decodes (a
        # warning is logged), and the tags (at the start) are written and verified
        "mp3": tagged,
        "flac": tagged,
        "wma": tagged,
        # cut inside the first page of audio (tests: at the middle of that page, so the outcome does
        # not depend on how many pages an encoder version makes): no complete audio is left
        "ogg": failed("decode", "file ends early"),
        "opus": failed("decode", "file ends early"),
        # RIFF/IFF chunk sizes point past the end: the tags written after the audio do not read
        # back, so the save is refused and the file left alone (a dry run cannot know that)
        "wav": failed("tag-write", "verification failed", dry="would tag"),
        "aiff": failed("tag-write", "verification failed", dry="would tag"),
        # the MP4 index (moov) is at the end: with it gone, nothing can be read
        "m4a": failed("tag-read", "not a MP4|not an MP4"),
    }
    notes = {
        "mp3": "what is left is analysed", "flac": "what is left is analysed (a warning is logged)",
        "wma": "what is left is analysed (a warning is logged)",
        "ogg": "cut inside the first page of audio: no complete Ogg page of audio left",
        "opus": "cut inside the first page of audio: no complete Ogg page of audio left",
        "wav": "the save does not verify; file left alone",
        "aiff": "the save does not verify; file left alone", "m4a": "the MP4 index (at the end) is gone",
    }
    for fmt, exp in truncated.items():
        out.append(Case(f"truncated.{fmt}", f"{fmt.upper()} truncated in the middle", **exp, note=notes[fmt]))
    for fmt in LONG_OGG:
        # Ogg pages carry their own checksums: the complete pages before the cut decode, the tags
        # (at the start) are rewritten in the verified copy and the pages after them are copied
        # byte for byte, so the audio stays bit-identical
        out.append(Case(f"truncated-long.{fmt}", f"{fmt.upper()} of {LONG_OGG_SECONDS:g} s cut in the middle "
                        "of a later page", **tagged,
                        note="the complete pages before the cut are analysed; audio bit-identical"))
    out += [
        # `cat a.ogg b.ogg`: mutagen reads and writes the first stream's tags only, libsndfile decodes
        # the first stream only: a genre for part of the file, beside the other streams' own tags
        *(Case(f"chained.{fmt}", f"two Ogg {label} streams one after another (a chained Ogg)",
               **failed("tag-read", "chained Ogg stream (2 logical streams"),
               note="not supported: left alone, before decoding (tests/test_ogg_chain.py)")
          for fmt, label in (("ogg", "Vorbis"), ("opus", "Opus"))),
        Case("random-bytes.mp3", "random bytes named .mp3", **failed("tag-read", "not an MP3 file")),
        Case("random-bytes.wav", "random bytes named .wav", **failed("tag-read", "not a WAV file")),
        Case("text.flac", "a text file named .flac", **failed("tag-read", "not a FLAC file")),
        Case("flac-named.mp3", "a FLAC file named .mp3", **tagged,
             note="recognised by content; tags written as FLAC (Vorbis comments)"),
        Case("corrupt-id3.mp3", "MP3 whose ID3v2 header is corrupt",
             **failed("tag-read", "damaged MP3 tags")),
        Case("too-short.wav", "0.1 s of audio (less than half an analysis chunk)",
             action="skipped", dry_action="skipped", kind="audio", reason="audio too short",
             note="nothing to classify: skipped, not retried until the file changes"),
        Case("under-one-chunk.wav", "0.4 s of audio (more than half a chunk, less than one)", **tagged,
             note="repeat-padded to one chunk"),
        Case("silence.flac", "3 s of digital silence", action="skipped", dry_action="skipped", kind="audio",
             reason="digital silence", note="nothing to classify: skipped, not retried until the file changes"),
        Case("6ch-96k.wav", "6-channel 96 kHz 24-bit WAV", **tagged,
             note="channels averaged, resampled once"),
        Case("two-hours.flac", "a 2-hour track", **tagged,
             note="sampled: at most --max-analysis-seconds (900 s) analysed; memory stays bounded"),
    ]
    what = {"name-spaces": "name with leading and double spaces", "name-newline": "name with a newline",
            "name-unicode": "name in Unicode (and emoji)", "name-dash": "name starting with dashes"}
    for key, name in ODD_NAMES.items():
        out.append(Case(name, what[key], **tagged))
    loop = failed("discover", "too many levels of symbolic links")
    out += [
        Case("loops/self.mp3", "symbolic link to itself", **loop),
        Case("loops/ping.flac", "two symbolic links pointing at each other", **loop),
        Case("loops/pong.flac", "(the other of the two)", **loop),
        Case("loops/here", "symbolic link to its own folder (a directory loop)", None, None,
             note="not entered again; no row"),
        Case("loops/inside.wav", "a good file in the folder with the loops", **tagged, note="reported once"),
        # situations the test harness makes around a good file
        Case("unreadable.wav", "file without read permission", **failed("tag-read", "permission denied"),
             situation="unreadable", note="tests: analysed as the user nobody"),
        Case("read-only.flac", "read-only file (the write fails)", **failed("tag-write", "file is read-only"),
             situation="read-only", note="tests: written as the user nobody; a dry run predicts it"),
        Case("vanished.wav", "deleted between the scan and the analysis",
             **failed("decode", "file not found"), situation="deleted-before-analysis"),
        Case("deleted.wav", "deleted between the analysis and the write",
             **failed("tag-write", "file not found"), situation="deleted-before-write"),
        Case("modified.flac", "modified between the analysis and the write",
             **failed("changed", "changed since it was analysed"), situation="modified-before-write",
             note="left as modified"),
        Case("disk-full.wav", "the disk fills up during the write",
             **failed("tag-write", "disk full|file size limit exceeded", dry="would tag"),
             situation="disk-full",
             note="the temporary copy fails; the original is untouched (tests: full tmpfs, RLIMIT_FSIZE)"),
    ]
    return out


CASES: dict[str, Case] = {c.name: c for c in _cases()}
#: Cases made by the test harness, by situation.
SITUATIONS: dict[str, Case] = {c.situation: c for c in CASES.values() if c.situation}


@dataclass(frozen=True)
class Fault:
    """A fault during a run (tests/test_faults.py) and what the run must do about it."""

    name: str
    what: str
    action: str | None  # the affected file's action; None: the run ends before any file
    kind: str | None
    reason: str
    exit_code: int
    note: str = ""


FAULTS: dict[str, Fault] = {f.name: f for f in [
    Fault("worker-killed-once", "the Ray worker analysing a file is killed (SIGKILL) mid-task", "tagged",
          None, "", 0, "the task is retried once (max_retries=1) on a fresh worker"),
    Fault("worker-killed-always", "the worker dies on every attempt (SIGKILL)", "failed", "worker",
          "analysis worker failed", 2, "after the retry; the other files are tagged"),
    Fault("decoder-hangs", "the decoder hangs", "failed", "timeout", "took longer than", 2,
          "--file-timeout (default 300 s, counted from when the file's task can run); the worker is killed"),
    Fault("ray-unreachable", "Ray cluster unreachable (--ray-address to a closed port)", None, None,
          "cannot reach the Ray cluster", 1, "one line, at once (a TCP check before ray.init)"),
]}


# --------------------------------------------------------------------------------------------------
# generation


def _tone(seconds: float, rate: int, channels: int = 1, seed: int = 0, freq: float = 440.0,
          noise: float = 0.05) -> np.ndarray:
    """A seeded tone plus noise, float32, shape (n,) or (n, channels), peak below 0.5."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * rate))) / rate
    cols = [0.3 * np.sin(2 * np.pi * (freq + 55.0 * c) * t) + noise * rng.standard_normal(t.size)
            for c in range(channels)]
    y = np.stack(cols, axis=1).astype(np.float32)
    return y[:, 0] if channels == 1 else y


def _write(path: Path, y: np.ndarray, rate: int, fmt: str, subtype: str = "PCM_16") -> None:
    """Write ``y`` in blocks, with a title and an artist (which tagging must leave alone)."""
    import soundfile as sf

    path.parent.mkdir(parents=True, exist_ok=True)
    channels = 1 if y.ndim == 1 else y.shape[1]
    with sf.SoundFile(str(path), "w", samplerate=rate, channels=channels, format=fmt, subtype=subtype) as f:
        f.title, f.artist = TITLE, ARTIST
        for start in range(0, y.shape[0], 1 << 14):
            f.write(y[start : start + (1 << 14)])


def write_two_hours(path: Path) -> None:
    """A 2-hour 8 kHz mono FLAC written in blocks (never held in memory): digital silence with a
    5 s tone burst every 30 s."""
    import soundfile as sf

    burst = (_tone(5.0, LONG_RATE, seed=7, freq=400.0, noise=0.0) * 32767).astype(np.int16)
    quiet = np.zeros(25 * LONG_RATE, np.int16)
    period = np.concatenate([burst, quiet])  # 30 s
    with sf.SoundFile(str(path), "w", samplerate=LONG_RATE, channels=1, format="FLAC", subtype="PCM_16") as f:
        for _ in range(LONG_SECONDS // 30):
            f.write(period)


def _corrupt_id3(src: bytes) -> bytes:
    """An ID3v2.4 header whose size is not syncsafe and points far past the end of the file,
    followed by the MP3 frames."""
    header = b"ID3" + bytes([4, 0, 0]) + bytes([0xFF, 0xFF, 0xFF, 0xFF])
    return header + b"\xff\x00" * 16 + src


def _ogg_pages(data: bytes) -> list[tuple[int, int, int]]:
    """``(offset, size, granule position)`` of every complete Ogg page of ``data``."""
    import struct

    pages, pos = [], 0
    while pos + 27 <= len(data) and data[pos : pos + 4] == b"OggS":
        granule = struct.unpack_from("<q", data, pos + 6)[0]
        nseg = data[pos + 26]
        size = 27 + nseg + sum(data[pos + 27 : pos + 27 + nseg])
        if pos + size > len(data):
            break
        pages.append((pos, size, granule))
        pos += size
    return pages


def _ogg_cut(data: bytes, *, audio_page: int) -> int:
    """Where to cut an Ogg file: the middle of its ``audio_page``-th page of audio (0: the first
    page after the headers; header pages have granule position 0)."""
    audio = [(o, n) for o, n, g in _ogg_pages(data) if g != 0]
    if len(audio) <= audio_page:
        raise ValueError(f"only {len(audio)} pages of audio; cannot cut inside page {audio_page}")
    offset, size = audio[audio_page]
    return offset + size // 2


def _long_ogg(path: Path, fmt: str, *, seed: int) -> bytes:
    """A LONG_OGG_SECONDS Ogg Vorbis or Opus file (fixed serial number, no tags) as bytes."""
    from tests.make_fixtures import _encode_av, _encode_sndfile, _fix_ogg_serial, _strip_tags, signal

    if fmt == "opus":
        x = signal(rate=48000, channels=2, seconds=LONG_OGG_SECONDS, seed=seed)
        _encode_av(path, container="ogg", codec="libopus", x=x, rate=48000, bit_rate=64_000)
    else:
        x = signal(rate=22050, channels=1, seconds=LONG_OGG_SECONDS, seed=seed)
        _encode_sndfile(path, fmt="OGG", subtype="VORBIS", x=x, rate=22050)
    _strip_tags(path)
    _fix_ogg_serial(path, serial=0x7A6780 + seed)
    return path.read_bytes()


def _symlink(target: str, link: Path) -> None:
    link.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(target, link)


def make_bad_corpus(dest_dir: str | Path, *, situations: bool = True, long: bool = True) -> dict[str, Path]:
    """Write every case of :data:`CASES` into ``dest_dir``; returns ``{case name: path}``.

    ``situations=False`` leaves out the files the harness makes situations around; ``long=False``
    leaves out the two-hour file.
    """
    from tests.make_fixtures import _fix_ogg_serial, make_fixtures

    dest = Path(dest_dir)
    dest.mkdir(parents=True, exist_ok=True)
    out: dict[str, Path] = {}
    with tempfile.TemporaryDirectory(prefix="tagger-bad-corpus-") as scratch:
        fx = make_fixtures(scratch)

        def bare(kind: str) -> bytes:
            return fx[kind]["bare"].read_bytes()

        def put(name: str, data: bytes) -> None:
            p = dest / name
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(data)
            out[name] = p

        put("zero-bytes.mp3", b"")
        for fmt, kind in TRUNCATED_KINDS.items():
            data = bare(kind)
            put(f"truncated.{fmt}", data[: _ogg_cut(data, audio_page=0) if fmt in LONG_OGG else len(data) // 2])
        for i, fmt in enumerate(LONG_OGG):
            data = _long_ogg(Path(scratch) / f"long.{fmt}", fmt, seed=40 + i)
            put(f"truncated-long.{fmt}", data[: _ogg_cut(data, audio_page=2)])
        for fmt in LONG_OGG:
            second = Path(scratch) / f"second.{fmt}"
            second.write_bytes(fx[fmt]["genre"].read_bytes())
            _fix_ogg_serial(second, serial=0x7A6790 + len(fmt))  # a chain's streams have their own serials
            put(f"chained.{fmt}", bare(fmt) + second.read_bytes())
        rng = np.random.default_rng(7)
        put("random-bytes.mp3", rng.integers(0, 256, size=48_000, dtype=np.uint8).tobytes())
        put("random-bytes.wav", rng.integers(0, 256, size=48_000, dtype=np.uint8).tobytes())
        put("text.flac", ("This is not a FLAC file, it is a shopping list.\n" * 40).encode())
        put("flac-named.mp3", bare("flac"))
        put("corrupt-id3.mp3", _corrupt_id3(bare("mp3")))

        for name, y, rate, fmt, sub in [
            ("too-short.wav", _tone(0.1, 22050, seed=1), 22050, "WAV", "PCM_16"),
            ("under-one-chunk.wav", _tone(0.4, 22050, seed=2), 22050, "WAV", "PCM_16"),
            ("silence.flac", np.zeros(3 * 44100, np.float32), 44100, "FLAC", "PCM_16"),
            ("6ch-96k.wav", _tone(3.0, 96000, channels=6, seed=3), 96000, "WAV", "PCM_24"),
        ]:
            _write(dest / name, y, rate, fmt, sub)
            out[name] = dest / name
        if long:
            write_two_hours(dest / "two-hours.flac")
            out["two-hours.flac"] = dest / "two-hours.flac"

        for i, name in enumerate(ODD_NAMES.values()):
            fmt = "FLAC" if name.endswith(".flac") else "WAV"
            _write(dest / name, _tone(2.0, 22050, seed=10 + i, freq=220.0 * (i + 1)), 22050, fmt)
            out[name] = dest / name

        loops = dest / "loops"
        _symlink("self.mp3", loops / "self.mp3")
        _symlink("pong.flac", loops / "ping.flac")
        _symlink("ping.flac", loops / "pong.flac")
        _symlink(".", loops / "here")
        _write(loops / "inside.wav", _tone(2.0, 22050, seed=20), 22050, "WAV")
        for name in ("self.mp3", "ping.flac", "pong.flac", "here", "inside.wav"):
            out[f"loops/{name}"] = loops / name

        if situations:
            for i, c in enumerate(SITUATIONS.values()):
                fmt = "FLAC" if c.name.endswith(".flac") else "WAV"
                # the disk-full file is far bigger than anything else the driver writes meanwhile
                # (state DB, report, Ray's driver log), which its tests' RLIMIT_FSIZE must allow
                seconds = 60.0 if c.situation == "disk-full" else 2.0
                _write(dest / c.name, _tone(seconds, 22050, seed=30 + i, freq=330.0), 22050, fmt)
                out[c.name] = dest / c.name
    return out


# --------------------------------------------------------------------------------------------------
# the docs table


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", "\\n")


def markdown_table() -> str:
    """The table of docs/bad-input.md, rendered from :data:`CASES` (one row per case)."""
    lines = [
        "| input | action | dry run | exit | error kind | reason contains | notes |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in CASES.values():
        reason = " *or* ".join(f"`{r}`" for r in c.reason.split("|")) if c.reason else ""
        kind = f"`{c.kind}`" if c.kind else ""
        code = str(c.exit_code) + (f" (dry run {c.dry_exit_code})" if c.dry_exit_code != c.exit_code else "")
        lines.append(
            f"| {_cell(c.what)} | {c.action or '(no row)'} | {c.dry_action or '(no row)'} | "
            f"{code} | {kind} | {reason} | {_cell(c.note)} |"
        )
    return "\n".join(lines) + "\n"


def faults_table() -> str:
    """The faults table of docs/bad-input.md, rendered from :data:`FAULTS`."""
    lines = [
        "| fault | file's action | exit | error kind | reason contains | notes |",
        "|---|---|---|---|---|---|",
    ]
    for f in FAULTS.values():
        kind = f"`{f.kind}`" if f.kind else ""
        reason = f"`{f.reason}`" if f.reason else ""
        lines.append(f"| {_cell(f.what)} | {f.action or '(run ends)'} | {f.exit_code} | {kind} | {reason} | "
                     f"{_cell(f.note)} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(f"usage: {argv[0]} DEST_DIR", file=sys.stderr)
        return 2
    made = make_bad_corpus(argv[1])
    for name, path in made.items():
        size = path.lstat().st_size
        print(f"{size:10d}  {name!r}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: find tests.*
    sys.exit(main(sys.argv))

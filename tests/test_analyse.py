"""tagger.analyse: sampled stretches hold whole chunks and decode no more audio than they use."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.pure

@pytest.mark.parametrize("features", [
    dict(kind="logmel", sample_rate=16000, n_fft=512, hop_length=256, n_mels=32, chunk_frames=187,
         chunk_hop_frames=187),
    dict(kind="logmel", sample_rate=22050, n_fft=2048, hop_length=512, n_mels=32, log="db", chunk_frames=172,
         chunk_hop_frames=86),
])
def test_sampled_stretches_hold_whole_chunks(features):
    from tagger.analyse import fit_chunks, plan_segments
    from tagger.features import FeatureParams, extract

    fp = FeatureParams(**features)
    assert fit_chunks([(0.0, None)], params=fp) == [(0.0, None)]
    for budget in (15, 30, 60):
        plan = plan_segments(210, analysis_seconds=budget, max_seconds=900, chunk_seconds=fp.chunk_seconds)
        fit = fit_chunks(plan, params=fp)
        assert [o for o, _ in fit] == [o for o, _ in plan]
        counts = []
        for _, d in fit:
            n = int(d * fp.sample_rate)
            y = np.random.default_rng(0).standard_normal(n).astype(np.float32)
            c = extract(y, params=fp).shape[0]
            assert extract(y[:-8], params=fp).shape[0] == c  # a decoder a few samples short loses nothing
            # and no audio is decoded for nothing: less than one chunk hop beyond the last chunk
            assert n < fp.chunk_seconds * fp.sample_rate + c * fp.chunk_hop_seconds * fp.sample_rate
            counts.append(c)
        assert max(counts) - min(counts) <= 1
        assert abs(sum(d for _, d in fit) - budget) <= fp.chunk_seconds  # about the budget asked for


def _music(path, sr: int, seconds: float = 40.0, fmt: str | None = None):
    """Stereo noise under a rising chirp: every stretch of it differs from its neighbours."""
    import soundfile as sf

    rng = np.random.default_rng(7)
    t = np.arange(int(seconds * sr)) / sr
    chirp = 0.4 * np.sin(2 * np.pi * (200 + 40 * t) * t)
    y = np.stack([chirp + 0.05 * rng.standard_normal(t.size), chirp * 0.5 + 0.05 * rng.standard_normal(t.size)], 1)
    sf.write(path, y.astype(np.float32), sr, format=fmt)
    return path


@pytest.mark.parametrize("sr,ext,fmt", [(44100, "wav", None), (22050, "wav", None), (48000, "ogg", "OGG")])
def test_an_aligned_stretch_is_the_whole_tracks_audio(tmp_path, sr, ext, fmt):
    """decode(aligned=True) gives a stretch's samples as the whole track decoded and resampled at
    once has them; decoding the stretch on its own shifts it and adds the resampler's start-up."""
    from tagger.decode import decode

    path = _music(tmp_path / f"m.{ext}", sr, fmt=fmt)
    whole = decode(path, sample_rate=16000)
    for offset in (2.992, 11.968 - 0.016, 7.3, 29.92):
        n = int(3.1 * 16000)
        start = int(round(offset * 16000))
        got = decode(path, sample_rate=16000, offset=offset, duration=3.1, aligned=True)
        assert got.shape == (n,)
        assert np.max(np.abs(got - whole[start:start + n])) < 2e-5, offset
        plain = decode(path, sample_rate=16000, offset=offset, duration=3.1)
        assert np.max(np.abs(plain[:n] - whole[start:start + n])) > 1e-4  # what aligning is for
    tail = decode(path, sample_rate=16000, offset=35.0, aligned=True)  # to the end of the track
    assert tail.shape == whole[35 * 16000:].shape
    assert np.max(np.abs(tail - whole[35 * 16000:])) < 2e-5


def test_aligned_stretches_make_the_whole_tracks_chunks(tmp_path):
    """Stretches on the whole-track chunk grid, decoded aligned with a frame of lead-in (the
    adaptive stages), make the whole-track run's chunks: their first frame is not padded."""
    from tagger.analyse import decode_segments, decode_segments_aligned
    from tagger.features import FeatureParams, extract, extract_segments

    fp = FeatureParams(kind="logmel", sample_rate=16000, n_fft=512, hop_length=256, n_mels=96, chunk_frames=187,
                       chunk_hop_frames=187, log="log10p", log_scale=10000.0)
    path = _music(tmp_path / "m.wav", 44100)
    from tagger.decode import decode

    whole = extract(decode(path, sample_rate=16000), params=fp)
    hop = 187 * 256 / 16000
    idx = [0, 3, 4, 9]
    segs = [(round(i * hop, 6), round((186 * 256 + 1 + 2048) / 16000, 4)) for i in idx]
    audio, skips = decode_segments_aligned(str(path), segs, params=fp)
    assert skips == [0, 1, 1, 1]  # no lead-in before the track's start
    got = extract_segments(audio, params=fp, skip_frames=skips)
    assert got.shape == (len(idx), *whole.shape[1:])
    assert np.max(np.abs(got - whole[idx])) < 1e-3
    plain = extract_segments(decode_segments(str(path), segs, params=fp), params=fp)
    assert np.max(np.abs(plain[1:] - whole[idx[1:]])) > 1e-2  # a padded first frame, a shifted resampling


def test_a_file_whose_seeking_lands_off_is_read_from_the_start(tmp_path, monkeypatch):
    """Seeking is checked once per file against reading from the start; where it lands elsewhere
    (libsndfile in some Ogg files), stretches are read from the start and the audio before them
    discarded: the same samples either way."""
    from tagger import decode as dec

    path = _music(tmp_path / "m.wav", 44100)
    whole = dec.decode(path, sample_rate=16000)
    assert dec._seeks_true(path, dec._decode_sndfile)  # a WAV seeks true
    y_seek, _ = dec._decode_sndfile(path, 7.3, 2.0, seek=True)
    y_read, _ = dec._decode_sndfile(path, 7.3, 2.0, seek=False)
    np.testing.assert_array_equal(y_seek, y_read)

    real = dec._decode_sndfile

    def lands_late(p, offset, duration, *, seek=True):  # a decoder whose seeks land 131 ms late
        return real(p, offset + 0.131 if seek and offset > 0 else offset, duration, seek=seek)

    other = _music(tmp_path / "o.wav", 44100)
    assert not dec._seeks_true(other, lands_late)
    monkeypatch.setattr(dec, "_decode_sndfile", lands_late)
    got = dec.decode(other, sample_rate=16000, offset=11.968, duration=3.1, aligned=True)
    start = int(round(11.968 * 16000))
    assert np.max(np.abs(got - whole[start:start + got.size])) < 2e-5  # read, not sought: right
    monkeypatch.setattr(dec, "_SEEK_CHECKED", {})  # without the check's answer the seek lands late
    monkeypatch.setattr(dec, "_seeks_true", lambda p, backend: True)
    off = dec.decode(other, sample_rate=16000, offset=11.968, duration=3.1, aligned=True)
    assert np.max(np.abs(off - whole[start:start + off.size])) > 1e-2


def test_stretches_of_a_file_that_seeks_off_are_cut_from_one_whole_decode(tmp_path, monkeypatch):
    """A file whose seeking lands off is decoded whole once per task and its stretches cut from it
    (reading each from the start would decode everything before each of them): the same samples."""
    from tagger import decode as dec
    from tagger.analyse import decode_segments, decode_segments_aligned
    from tagger.features import FeatureParams

    fp = FeatureParams(kind="logmel", sample_rate=16000, n_fft=512, hop_length=256, n_mels=32, chunk_frames=187,
                       chunk_hop_frames=187)
    path = _music(tmp_path / "m.wav", 44100)
    segs = [(2.992, 3.1041), (11.968, 3.1041), (35.904, None)]
    want_aligned, skips = decode_segments_aligned(str(path), segs, params=fp)
    want_plain = decode_segments(str(path), segs, params=fp)
    calls = []
    real = dec.decode

    def counting(*a, **k):
        calls.append(k.get("offset", 0.0))
        return real(*a, **k)

    monkeypatch.setattr(dec, "seeks_true", lambda p: False)
    monkeypatch.setattr(dec, "decode", counting)
    got, skips2 = decode_segments_aligned(str(path), segs, params=fp)
    assert calls == [0.0] and skips2 == skips  # one whole decode, nothing sought
    for a, b in zip(got, want_aligned, strict=True):
        assert a.shape == b.shape and np.max(np.abs(a - b)) < 2e-5
    calls.clear()
    got = decode_segments(str(path), segs, params=fp)
    assert calls == [0.0]
    whole = real(path, sample_rate=16000)
    for (o, _), a, b in zip(segs, got, want_plain, strict=True):
        assert abs(a.size - b.size) <= 1  # the same stretches, cut from the whole track's timeline
        i0 = int(round(o * 16000))
        np.testing.assert_array_equal(a, whole[i0:i0 + a.size])

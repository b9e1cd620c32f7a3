"""Features for training: computed on Ray workers with the very function ``tagger tag`` uses,
cached by content hash + FeatureParams digest, unusable files skipped and counted."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from tagger.decode import decode
from tagger.features import FeatureParams, extract
from tests.training_helpers import SR, make_tree, synth
from training.cache import FeatureCache, cache_key, compute_features, extract_file
from training.datasets import prepare

PARAMS = FeatureParams(kind="logmel", sample_rate=22050, n_fft=1024, hop_length=512, n_mels=32, log="db",
                       chunk_frames=86, chunk_hop_frames=43)

pytestmark = [pytest.mark.ray, pytest.mark.train]


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = make_tree(tmp_path_factory.mktemp("cache") / "data", per_genre=4, seconds=5.0)
    genres = root / "genres"
    (genres / "drone" / "drone.00054.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk" * 10)  # corrupt
    sf.write(str(genres / "hiss" / "hiss.00099.wav"), synth("hiss", 99, seconds=0.5), SR)  # too short
    sf.write(str(genres / "chirp" / "chirp.00098.wav"), np.zeros(SR * 5, np.float32), SR)  # silent
    return root


def test_extract_file_is_tagger_features(tree):
    path = str(tree / "genres" / "chirp" / "chirp.00000.wav")
    status, chunks = extract_file(path, params=PARAMS.to_dict(), max_seconds=None)
    assert status == "ok" and chunks.dtype == np.float16
    expected = extract(decode(path, sample_rate=PARAMS.sample_rate), params=PARAMS)
    assert chunks.shape == expected.shape
    np.testing.assert_array_equal(chunks, expected.astype(np.float16))
    bad = extract_file(str(tree / "genres" / "hiss" / "hiss.00099.wav"), params=PARAMS.to_dict(), max_seconds=None)
    assert bad[0] == "error" and bad[1] == "audio" and "too short" in bad[2]


@pytest.mark.slow
def test_cache_computes_once_and_skips_unusable_files(tree, tmp_path, ray_session):
    paths = sorted(str(p) for p in (tree / "genres").rglob("*.wav"))
    cache_dir = tmp_path / "cache"
    first = compute_features(paths, params=PARAMS, cache_dir=cache_dir)
    assert first.computed == len(paths) == 15 and first.cached == 0
    assert {p.rsplit("/", 1)[1]: e.kind for p, e in first.failed.items()} == {
        "drone.00054.wav": "decode", "hiss.00099.wav": "audio", "chirp.00098.wav": "audio"}
    assert "silence" in first.failed[str(tree / "genres" / "chirp" / "chirp.00098.wav")].reason
    assert len(first.shas) == 12
    cache = FeatureCache(cache_dir, PARAMS)
    index = json.loads((cache_dir / cache_key(PARAMS, max_seconds=None) / "index.json").read_text())
    assert set(index["entries"]) == set(first.shas.values()) and len(index["failures"]) == 3
    stored = {p: cache.get(sha) for p, sha in first.shas.items()}

    second = compute_features(paths, params=PARAMS, cache_dir=cache_dir)  # a re-run computes nothing
    assert second.computed == 0 and second.cached == 15
    assert second.shas == first.shas and set(second.failed) == set(first.failed)

    # other parameters are another feature set; a changed file is recomputed, alone
    other = compute_features(paths[:2], params=PARAMS.__class__(**{**PARAMS.to_dict(), "n_mels": 16}),
                             cache_dir=cache_dir)
    assert other.computed == 2
    target = tree / "genres" / "drone" / "drone.00001.wav"
    original = target.read_bytes()
    try:
        sf.write(str(target), synth("drone", 77, seconds=5.0), SR)
        third = compute_features(paths, params=PARAMS, cache_dir=cache_dir)
        assert third.computed == 1 and third.shas[str(target)] != first.shas[str(target)]
        unchanged = [p for p in paths if p in first.shas and p != str(target)]
        for p in unchanged:
            np.testing.assert_array_equal(cache.get(third.shas[p]), stored[p])
    finally:
        target.write_bytes(original)


@pytest.mark.slow
def test_prepare_counts_skipped_files(tree, tmp_path, ray_session):
    data = prepare(tree, out=tmp_path / "work", folds=2, seed=0)
    assert data["name"] == "data" and data["labels"] == ["chirp", "drone", "hiss"]
    assert len(data["tracks"]) == 12 and len(data["skipped"]) == 3
    assert {s["track"] for s in data["skipped"]} == {
        "drone/drone.00054.wav", "hiss/hiss.00099.wav", "chirp/chirp.00098.wav"}
    assert data["class_counts"] == {"chirp": 4, "drone": 4, "hiss": 4}
    s = data["split"]
    assert sorted(s["train"] + s["valid"] + s["test"]) == sorted(t["track"] for t in data["tracks"])
    assert data["timings"]["features_computed"] == 15
    again = prepare(tree, out=tmp_path / "work", folds=2, seed=0)
    assert again["timings"]["features_computed"] == 0 and again["split"] == s and again["folds"] == data["folds"]

"""The feature function and the model-metadata contract shared by tag and train."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tagger.errors import ModelError, ParameterError
from tagger.features import FeatureParams, chunk_frames, extract, extract_segments, is_silent, log_mel
from tagger.modelmeta import load_meta, locate, model_id_for
from tests.conftest import TINY_FEATURES, build_tiny_model, tone

pytestmark = pytest.mark.tf


def test_chunking_overlap_and_count():
    p = FeatureParams(chunk_frames=4, chunk_hop_frames=2)
    S = np.arange(10, dtype=np.float32)[:, None]
    c = chunk_frames(S, params=p)
    assert c.shape == (4, 4, 1)
    assert c[1, :, 0].tolist() == [2, 3, 4, 5]  # hop of 2 frames
    assert c[-1, -1, 0] == 9


def test_short_input_is_repeat_padded():
    p = FeatureParams(chunk_frames=6, chunk_hop_frames=6)
    c = chunk_frames(np.array([[1.0], [2.0], [3.0], [4.0]]), params=p)
    assert c.shape == (1, 6, 1)
    assert c[0, :, 0].tolist() == [1, 2, 3, 4, 1, 2]


def test_extract_shapes_match_metadata_input_shape():
    p = FeatureParams(**TINY_FEATURES)
    y = tone(3.0, sr=p.sample_rate)
    x = extract(y, params=p)
    assert x.shape[1:] == p.input_shape
    assert x.dtype == np.float32
    # 3 s at 8 kHz, hop 128 -> 188 frames -> 6 chunks of 31
    assert x.shape[0] == 188 // 31


def test_log10p_matches_musicnn_formula():
    import librosa

    p = FeatureParams()  # musicnn front end: 16 kHz, 512/256, 96 mels, log10(10000 S + 1)
    y = tone(2.0, sr=16000)
    S = librosa.feature.melspectrogram(y=y, sr=16000, n_fft=512, hop_length=256, n_mels=96).T
    np.testing.assert_allclose(log_mel(y, params=p), np.log10(10000 * S + 1), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("over", [{}, {"htk": True, "mel_norm": None}, {"fmin": 30.0, "fmax": 6000.0, "power": 1.0},
                                  {"sample_rate": 22050, "n_fft": 1024, "hop_length": 512, "n_mels": 128}])
def test_log_mel_is_librosas_melspectrogram_bit_for_bit(over):
    """log_mel builds the mel filter bank once (cached) instead of in every melspectrogram call:
    the values must stay melspectrogram's exactly, for short stretches and whole tracks alike."""
    import librosa

    p = FeatureParams(**over)
    rng = np.random.default_rng(3)
    for seconds in (0.3, 3.2, 31.0):
        y = (rng.standard_normal(int(seconds * p.sample_rate)) * 0.2).astype(np.float32)
        S = librosa.feature.melspectrogram(y=y, sr=p.sample_rate, n_fft=p.n_fft, hop_length=p.hop_length,
                                           n_mels=p.n_mels, fmin=p.fmin, fmax=p.fmax, power=p.power, htk=p.htk,
                                           norm=p.mel_norm)
        S = np.asarray(S, dtype=np.float32).T
        want = (np.log10(p.log_scale * S + 1.0) if p.log == "log10p" else S)
        if p.mean is not None:
            want = want - p.mean
        if p.std is not None:
            want = want / p.std
        np.testing.assert_array_equal(log_mel(y, params=p), want.astype(np.float32))


def test_too_short_and_bad_audio_raise_parameter_error():
    p = FeatureParams(**TINY_FEATURES)
    with pytest.raises(ParameterError, match="too short"):
        extract(np.zeros(100, np.float32), params=p)
    with pytest.raises(ParameterError, match="mono"):
        extract(np.zeros((100, 2), np.float32), params=p)
    with pytest.raises(ParameterError, match="NaN"):
        extract(np.full(8000, np.nan, np.float32), params=p)
    # segments: a too-short segment is ignored while another is usable
    x = extract_segments([np.ones(50, np.float32), tone(2.0, sr=8000)], params=p)
    assert x.shape[0] >= 1


def test_silence_detection():
    assert is_silent(np.zeros(1000, np.float32))
    assert not is_silent(tone(0.1))


@pytest.mark.parametrize("bad, message", [
    ({"kind": "spectro"}, "kind"),
    ({"n_mels": 0}, "n_mels"),
    ({"hop_length": 1.5}, "hop_length"),
    ({"fmax": 9000.0, "sample_rate": 16000}, "Nyquist"),
])
def test_feature_params_validation(bad, message):
    with pytest.raises(ParameterError, match=message):
        FeatureParams(**bad)


def test_feature_params_roundtrip_and_digest():
    p = FeatureParams(**TINY_FEATURES)
    assert FeatureParams.from_dict(json.loads(json.dumps(p.to_dict()))) == p
    assert p.digest() != FeatureParams().digest()
    with pytest.raises(ParameterError, match="unknown"):
        FeatureParams.from_dict({**p.to_dict(), "bogus": 1})


def test_bundle_roundtrip_and_id_is_content_hash(tmp_path):
    files = build_tiny_model(tmp_path)
    meta = load_meta(files)
    assert meta.model_id == model_id_for(files.weights, meta)
    assert meta.features == FeatureParams(**TINY_FEATURES)
    assert locate(tmp_path) == files  # a folder with one .keras works too
    assert locate(files.meta) == files


def _edit(files, **changes):
    data = json.loads(files.meta.read_text())
    data.update(changes)
    files.meta.write_text(json.dumps(data))


@pytest.mark.parametrize("change, message", [
    ({"labels": []}, "labels"),
    ({"labels": ["a", "a"]}, "duplicates"),
    ({"output_activation": "relu"}, "output_activation"),
    ({"input_shape": [10, 10]}, "input_shape"),
    ({"schema": 99}, "schema"),
    ({"model_id": "0123456789abcdef"}, "does not match the weights"),
])
def test_inconsistent_metadata_is_refused(tmp_path, change, message):
    files = build_tiny_model(tmp_path)
    _edit(files, **change)
    with pytest.raises(ModelError, match=message):
        load_meta(files)


@pytest.mark.parametrize("edit", [
    lambda d: d.update(labels=[d["labels"][1], d["labels"][0], *d["labels"][2:]]),  # two labels swapped
    lambda d: d.update(display_names={d["labels"][0]: "Something Else"}),
    lambda d: d.update(output_activation="sigmoid" if d["output_activation"] == "softmax" else "softmax"),
    lambda d: d["features"].update(hop_length=d["features"]["hop_length"] * 2),
], ids=["labels-swapped", "display-names", "activation", "features"])
def test_model_id_covers_what_is_written(tmp_path, edit):
    """Issue 15.8: a model whose labels (or anything else that changes the genres written) were
    edited is refused, instead of writing Blues for Classical under the original's id."""
    files = build_tiny_model(tmp_path)
    data = json.loads(files.meta.read_text())
    edit(data)
    files.meta.write_text(json.dumps(data))
    with pytest.raises(ModelError, match="does not match the weights"):
        load_meta(files)


def test_model_id_ignores_descriptions(tmp_path):
    files = build_tiny_model(tmp_path)
    before = load_meta(files).model_id
    _edit(files, name="renamed", metrics={"note": "re-evaluated"}, training={"command": "elsewhere"})
    assert load_meta(files).model_id == before


def test_missing_field_and_bad_json(tmp_path):
    files = build_tiny_model(tmp_path)
    data = json.loads(files.meta.read_text())
    del data["features"]
    files.meta.write_text(json.dumps(data))
    with pytest.raises(ModelError, match="missing field"):
        load_meta(files)
    files.meta.write_text("{not json")
    with pytest.raises(ModelError, match="not valid JSON"):
        load_meta(files)


def test_label_count_mismatch_refused_on_network_load(tmp_path):
    from tagger.model import GenreModel

    files = build_tiny_model(tmp_path)
    data = json.loads(files.meta.read_text())
    data["labels"] = data["labels"][:-1]
    files.meta.write_text(json.dumps(data))
    with pytest.raises(ModelError, match="labels"):
        GenreModel.load(files)


def test_model_predicts_probabilities(tiny_model):
    from tagger.model import GenreModel

    m = GenreModel.load(tiny_model, batch_size=4)
    x = np.random.default_rng(0).standard_normal((10, *m.meta.input_shape)).astype(np.float32)
    p = m.predict(x)
    assert p.shape == (10, 5)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-5)
    # batching does not change results
    np.testing.assert_allclose(GenreModel.load(tiny_model, batch_size=64).predict(x), p, rtol=1e-5, atol=1e-6)


def test_missing_model_file(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        locate(tmp_path / "nope.keras")

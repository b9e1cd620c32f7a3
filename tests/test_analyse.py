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

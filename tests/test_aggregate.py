import numpy as np
import pytest

from tagger.aggregate import SKIP, TAG, UNCERTAIN, decide, display_name, needs_analysis, track_scores

LABELS = ("blues", "hiphop", "jazz", "rock")

pytestmark = pytest.mark.pure


def test_track_scores_is_mean_of_chunks():
    p = np.array([[0.1, 0.2, 0.3, 0.4], [0.3, 0.2, 0.1, 0.4]], np.float32)
    np.testing.assert_allclose(track_scores(p), [0.2, 0.2, 0.2, 0.4])
    with pytest.raises(ValueError):
        track_scores(np.zeros((0, 4)))


def test_display_names_user_map_wins():
    assert display_name("hiphop") == "Hip-Hop"
    assert display_name("hiphop", model_names={"hiphop": "Hip Hop"}) == "Hip Hop"
    assert display_name("hiphop", model_names={"hiphop": "Hip Hop"}, user_map={"hiphop": "Rap"}) == "Rap"
    assert display_name("shoegaze") == "Shoegaze"


def test_top_k_and_threshold():
    s = np.array([0.05, 0.5, 0.3, 0.15])
    d = decide(s, LABELS, top_k=2, min_confidence=0.25)
    assert d.action == TAG and d.genres == ("Hip-Hop", "Jazz")
    d = decide(s, LABELS, top_k=1, min_confidence=0.6)
    assert d.action == UNCERTAIN and "0.60" in d.reason and d.genres == ()


def test_existing_person_genre_policies():
    s = np.array([0.05, 0.8, 0.1, 0.05])
    assert decide(s, LABELS, existing=("Soul",)).action == SKIP
    d = decide(s, LABELS, existing=("Soul",), on_existing="replace")
    assert d.action == TAG and d.genres == ("Hip-Hop",)
    d = decide(s, LABELS, existing=("Soul",), on_existing="merge")
    assert d.genres == ("Soul", "Hip-Hop")
    assert decide(s, LABELS, existing=("hip-hop",), on_existing="merge").action == SKIP


def test_tagger_owned_genre_updated_by_other_model_only():
    s = np.array([0.05, 0.8, 0.1, 0.05])
    same = decide(s, LABELS, existing=("Jazz",), tagger_owned=True, owner_model_id="m1", model_id="m1")
    assert same.action == TAG  # same model id but different genre (e.g. new threshold): rewrite
    d = decide(s, LABELS, existing=("Hip-Hop",), tagger_owned=True, owner_model_id="m1", model_id="m1")
    assert d.action == SKIP and "already" in d.reason
    d = decide(s, LABELS, existing=("Jazz",), tagger_owned=True, owner_model_id="m0", model_id="m1")
    assert d.action == TAG and d.genres == ("Hip-Hop",)


def test_needs_analysis_early_skip():
    assert needs_analysis(existing=("Soul",), tagger_owned=False, owner_model_id=None, model_id="m",
                          on_existing="skip") is not None
    assert needs_analysis(existing=("Soul",), tagger_owned=False, owner_model_id=None, model_id="m",
                          on_existing="replace") is None
    assert needs_analysis(existing=(), tagger_owned=False, owner_model_id=None, model_id="m",
                          on_existing="skip") is None
    assert needs_analysis(existing=("Jazz",), tagger_owned=True, owner_model_id="m", model_id="m",
                          on_existing="skip") == "already tagged by this model"
    assert needs_analysis(existing=("Jazz",), tagger_owned=True, owner_model_id="old", model_id="m",
                          on_existing="skip") is None

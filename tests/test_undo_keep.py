"""``tagger undo --keep`` promises that later runs of the same model leave the file alone
(issue 15.11): the plan and the state database share one currency test."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from tagger.cli import main
from tests.test_pipeline import genres_of, make_lib, tag_args

pytestmark = [pytest.mark.usefixtures("ray_session"), pytest.mark.tf, pytest.mark.ray]


def test_undo_keep_is_honoured_by_the_next_run(tmp_path, tiny_model):
    lib = tmp_path / "lib"
    paths = make_lib(lib, n=2)
    state = str(tmp_path / "state.db")
    r = CliRunner().invoke(main, tag_args(lib, tiny_model, tmp_path))
    assert r.exit_code == 0 and "2 tagged" in r.output, r.output
    run_id = CliRunner().invoke(main, ["runs", "--state-db", state]).output.splitlines()[1].split()[0]
    r = CliRunner().invoke(main, ["undo", run_id, "--keep", "--state-db", state])
    assert r.exit_code == 0 and "2 restored" in r.output, r.output
    assert all(genres_of(p) == [] for p in paths)
    r = CliRunner().invoke(main, tag_args(lib, tiny_model, tmp_path))
    assert r.exit_code == 0, r.output
    assert "2 files unchanged" in r.output and "tagged" not in r.output.replace("unchanged", "")
    assert all(genres_of(p) == [] for p in paths)  # left alone, as --keep promised
    # --force still looks again
    r = CliRunner().invoke(main, tag_args(lib, tiny_model, tmp_path, "--force"))
    assert r.exit_code == 0 and "2 tagged" in r.output, r.output

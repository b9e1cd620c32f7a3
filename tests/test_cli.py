"""tagger.cli: the table of commands, what `tagger --help` loads, and the names kept for old imports."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from tagger import cli

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.pure


def test_every_command_in_the_table_loads_and_is_listed():
    r = CliRunner().invoke(cli.main, ["--help"])
    assert r.exit_code == 0, r.output
    listed = r.output.split("Commands:", 1)[1]
    ctx = click.Context(cli.main)
    for name, (module, attr, line) in cli.LazyGroup.lazy.items():
        cmd = cli.main.get_command(ctx, name)
        assert isinstance(cmd, click.Command), name
        assert cmd.name == name, (name, module, attr)
        assert f"  {name} " in listed, name
        assert line[:40] in " ".join(listed.split()), name  # its line, as the table gives it


def test_help_of_each_command_works():
    for name in cli.LazyGroup.lazy:
        r = CliRunner().invoke(cli.main, [name, "--help"])
        assert r.exit_code == 0 and "Usage:" in r.output, (name, r.output)


def test_help_loads_no_command_and_no_heavy_module():
    code = ("import sys\nfrom tagger.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "mods = [m for m in sys.modules if m.startswith('tagger.commands.') and m != 'tagger.commands.common']\n"
            "heavy = [m for m in ('numpy', 'tagger.config', 'tensorflow', 'ray') if m in sys.modules]\n"
            "print('LOADED', mods, heavy)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr
    assert "LOADED [] []" in out.stdout, out.stdout


@pytest.mark.parametrize("name, module, attr", [
    ("tag_cmd", "tagger.commands.tag", "tag_cmd"), ("run_folders", "tagger.commands.runs", "run_folders"),
    ("_make_progress", "tagger.commands.progress", "make_progress"),
    ("_TqdmProgress", "tagger.commands.progress", "TqdmProgress"),
    ("_h", "tagger.commands.options", "option_help"), ("setup_logging", "tagger.commands.common", "setup_logging"),
    ("UsageExitGroup", "tagger.commands.common", "UsageExitGroup"), ("fail", "tagger.commands.common", "fail"),
])
def test_names_that_moved_are_still_importable_from_tagger_cli(name, module, attr):
    import importlib

    assert getattr(cli, name) is getattr(importlib.import_module(module), attr)


def test_an_unknown_name_is_still_an_attribute_error():
    with pytest.raises(AttributeError):
        cli.no_such_name  # noqa: B018

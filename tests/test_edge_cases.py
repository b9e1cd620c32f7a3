"""docs/bad-input.md's edge-case table is in step with tests/edge_cases.py, and every test it
names exists."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.edge_cases import EDGES, markdown_table

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.pure



def test_docs_carry_the_edge_case_table():
    page = (ROOT / "docs" / "bad-input.md").read_text(encoding="utf-8")
    assert markdown_table() in page, (
        "docs/bad-input.md is out of step with tests/edge_cases.py: paste the output of "
        "`python -c 'from tests.edge_cases import markdown_table; print(markdown_table())'`")


@pytest.mark.parametrize("edge", EDGES, ids=[e.test for e in EDGES])
def test_every_named_test_exists(edge):
    file, _, name = edge.test.partition("::")
    path = ROOT / file
    assert path.is_file(), f"{file} does not exist"
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = {n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
    assert name.split("[")[0] in names, f"{edge.test}: no such test"

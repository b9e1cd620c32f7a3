"""Bad moments, bad names and bad frames (issue 15): each case, what tagger does with it now,
and the regression test that proves it.

``docs/bad-input.md`` carries the table :func:`markdown_table` renders from :data:`EDGES`, and
``tests/test_edge_cases.py`` checks both that the page is in step and that every test named
here exists, so the three cannot drift apart. Add a case here together with its test.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Edge:
    """One edge case: ``what`` happens, what tagger ``gets`` it to do, and the ``test``
    (``tests/test_FILE.py::test_NAME``) that fails without the fix."""

    what: str
    gets: str
    test: str


#: Every case, in the order of the docs table.
EDGES: list[Edge] = [
]


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", "\\n")


def markdown_table() -> str:
    """The edge-case table of docs/bad-input.md."""
    lines = ["| situation | what tagger does | test |", "|---|---|---|"]
    for e in EDGES:
        lines.append(f"| {_cell(e.what)} | {_cell(e.gets)} | `{e.test}` |")
    return "\n".join(lines) + "\n"

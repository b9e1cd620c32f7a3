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
    Edge("the state database's disk is full when a write's undo record is due",
         "the file is not touched (write-ahead journal); its row is failed, kind `journal`, naming the "
         "full disk; the report is still written; exit 1",
         "tests/test_undo_writeahead.py::test_full_disk_under_the_journal_leaves_the_file_alone"),
    Edge("the driver is killed (SIGKILL) just before or just after the copy replaces the file",
         "the undo record was on disk first; the next run or undo settles it from the file (written / "
         "not written, logged) and `tagger undo` restores the genre exactly",
         "tests/test_undo_writeahead.py::test_sigkill_at_the_replace_is_undoable"),
    Edge("a model's json edited by hand (labels swapped, display names, activation, features)",
         "refused: the model id covers the weights and every field that changes what is written",
         "tests/test_contract.py::test_model_id_covers_what_is_written"),
    Edge("`tagger undo --keep`, then the same model runs again",
         "the file is left alone (one currency test for the plan and the state database)",
         "tests/test_undo_keep.py::test_undo_keep_is_honoured_by_the_next_run"),
]


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", "\\n")


def markdown_table() -> str:
    """The edge-case table of docs/bad-input.md."""
    lines = ["| situation | what tagger does | test |", "|---|---|---|"]
    for e in EDGES:
        lines.append(f"| {_cell(e.what)} | {_cell(e.gets)} | `{e.test}` |")
    return "\n".join(lines) + "\n"

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
    Edge("file name with bytes that are not valid UTF-8, dry run and real run",
         "JSON keeps it exactly (`\\udcNN` escapes, `path_bytes` in base64); CSV, HTML, console and log show `\\xNN`",
         "tests/test_names.py::test_cli_reports_undecodable_names"),
    Edge("such a name logged to a UTF-8 console or log file",
         "the line is written with `\\xNN`, never dropped as a logging error",
         "tests/test_names.py::test_log_and_console_lines_with_undecodable_names"),
    Edge("file name of 235 to 255 bytes (ASCII or multi-byte UTF-8)",
         "tagged and restored: the temporary copy or backup keeps the start of the name plus a hash, within NAME_MAX",
         "tests/test_long_names.py::test_write_and_restore_a_255_byte_name"),
    Edge("report file name of 255 bytes", "written (its temporary file's name fits too)",
         "tests/test_long_names.py::test_report_with_a_255_byte_name"),
    Edge("chained Ogg (`cat a.ogg b.ogg`, Vorbis or Opus)",
         "failed, `tag-read`: `chained Ogg stream (2 logical streams one after another): not supported; left alone`",
         "tests/test_ogg_chain.py::test_chained_ogg_is_left_alone_with_one_clear_line"),
    Edge("libsndfile gives an Ogg's length as 2^63 - 1 frames",
         "taken as unknown, FFmpeg's length used (was: `Python int too large to convert to C long`)",
         "tests/test_ogg_chain.py::test_unknown_length_from_libsndfile_is_not_a_length"),
    Edge("Ogg cut inside its first audio page / inside a later page",
         "failed `file ends early` / tagged: the complete pages are analysed, audio bit-identical",
         "tests/test_bad_input.py::test_bad_corpus_end_to_end"),
    Edge("a report written under umask 022 (or 027, 002)", "mode 0644 (0640, 0664), as any new file; was 0600",
         "tests/test_report_edges.py::test_report_mode_follows_the_umask"),
    Edge("a run over one file", "`1 file: ...` in every summary line, note and heading",
         "tests/test_report_edges.py::test_one_file_is_singular_in_every_summary"),
    Edge("a file that is not audio by its extension", "failed row, and its reason on the console too",
         "tests/test_discover_edges.py::test_cli_rows_and_console_lines"),
    Edge("a FIFO named `x.mp3` (in a folder, or given by name)",
         "skipped row `not a regular file (a FIFO (named pipe)); left alone`; never opened, so never a hang",
         "tests/test_discover_edges.py::test_walk_never_yields_a_fifo_given_by_name"),
    Edge("a folder named `x.mp3`", "skipped row `a folder named like an audio file, ...`; its files are walked as usual",
         "tests/test_discover_edges.py::test_walk_reports_fifo_and_folder_named_like_audio"),
]


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", "\\n")


def markdown_table() -> str:
    """The edge-case table of docs/bad-input.md."""
    lines = ["| situation | what tagger does | test |", "|---|---|---|"]
    for e in EDGES:
        lines.append(f"| {_cell(e.what)} | {_cell(e.gets)} | `{e.test}` |")
    return "\n".join(lines) + "\n"

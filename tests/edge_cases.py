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
    Edge("the driver is killed while writing a hard-linked file in place",
         "the next run puts the byte backup back (original bytes and mtime, links kept), removes "
         "leftover temporary copies, and settles the journal entry",
         "tests/test_undo_writeahead.py::test_sigkill_at_the_replace_is_undoable[in-place]"),
    Edge("a model's json edited by hand (labels swapped, display names, activation, features)",
         "refused: the model id covers the weights and every field that changes what is written",
         "tests/test_contract.py::test_model_id_covers_what_is_written"),
    Edge("`tagger undo --keep`, then the same model runs again",
         "the file is left alone (one currency test for the plan and the state database)",
         "tests/test_undo_keep.py::test_undo_keep_is_honoured_by_the_next_run"),
    Edge(
        what="ID3 text frames whose bytes do not decode (TIT2 says UTF-8, holds \\xff)",
        gets="kept byte for byte, in order, through write and undo; a version change losing one is refused",
        test="tests/test_tags_edges.py::test_undecodable_id3_text_frames_survive_write_and_undo",
    ),
    Edge(
        what="MP3 (or WAV) with an ID3v1 tag",
        gets="the 128 v1 bytes stay exactly as they were (genre byte too); no v1 field is copied into v2",
        test="tests/test_tags_edges.py::test_id3v1_tag_is_kept_exactly",
    ),
    Edge(
        what="MP3 with only an ID3v1 tag",
        gets="its v1 genre counts as a genre; the new v2 tag holds only TCON and provenance; undo removes it",
        test="tests/test_tags_edges.py::test_v1_only_mp3_gets_no_v1_fields_in_its_new_v2_tag",
    ),
    Edge(
        what="WMA with several genres (Header Extension before Extended Content Description)",
        gets="all in the Metadata Library, best first: kid3 and exiftool list them in order",
        test="tests/test_tags_edges.py::test_wma_best_genre_is_first_in_object_order",
    ),
    Edge(what='a typo on the command line (`--top-k 0`, an unknown option)',
         gets='exit 64 (EX_USAGE), one `Error:` line; never 2, which cron/systemd treat as done',
         test='tests/test_exit_codes.py::test_usage_errors_exit_64_for_every_command'),
    Edge(what='a `ray start` cluster runs on the machine, no `--ray-address`',
         gets='a private local Ray (`address="local"`); joins only with auto, HOST:PORT or RAY_ADDRESS',
         test='tests/test_cluster_local.py::test_default_run_does_not_join_the_ray_start_cluster'),
    Edge(what='a worker node dies mid-run',
         gets='its tasks retried or failed (`worker`, naming the node); written files stay; report, state saved',
         test='tests/test_cluster_local.py::test_a_node_killed_mid_run_costs_only_its_files'),
    Edge(what='a node dies during the start-up check', gets='a report note, not "cannot run tagger"; the run goes on',
         test='tests/test_cluster.py::test_node_lost_during_the_start_up_check_is_a_note_not_cannot_run_tagger'),
    Edge(what='the lock file cannot be written (disk full)', gets='exit 1, one line naming the lock file and ENOSPC',
         test='tests/test_lock.py::test_lock_file_on_a_full_disk_is_one_clear_line_exit_1'),
    Edge(what='a `[genres]` value with a newline or control character',
         gets='refused on load, one line naming the key (was: the run died at the first write)',
         test='tests/test_config_edges.py::test_genres_with_control_characters_are_refused_on_load'),
    Edge(what='a run with a fresh HOME',
         gets="only tagger's XDG folders: KERAS_HOME, MPLCONFIGDIR, Ray's session and token kept out of ~",
         test='tests/test_dirs.py::test_a_run_with_a_fresh_home_leaves_only_tagger_folders'),
    Edge(what='`tagger config --example` saved as is',
         gets='sets nothing: every line commented out, each with its `--help` text',
         test='tests/test_config_edges.py::test_example_config_saved_as_is_changes_nothing'),
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
    Edge("a folder named `x.mp3`",
         "skipped row `a folder named like an audio file, ...`; its files are walked as usual",
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

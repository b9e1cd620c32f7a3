"""What the report model and every writer share: the actions a row can have, and the stamps
(time, tool) a report carries. A leaf: it imports nothing of tagger's but the version."""

from __future__ import annotations

import time

#: A row's action, in the order of the counts and of the summary line.
ACTIONS = ("tagged", "would tag", "skipped", "uncertain", "failed")


def iso_utc(t: float | None) -> str | None:
    """A time (seconds since the epoch) as ISO-8601 UTC to the second; None stays None."""
    if t is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def tool_name() -> str:
    """``tagger <version>``: what wrote the report."""
    from tagger import __version__

    return f"tagger {__version__}"

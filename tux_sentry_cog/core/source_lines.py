"""Source lines of an error event's frames, from Python's line cache.

The SDK fills each frame's ``pre_context`` / ``context_line`` / ``post_context`` by asking
the module's loader for its whole source, read from disk and decoded again for every frame
of every event (a module like ``discord/ext/commands/core.py`` is 100 KB): about half a
millisecond a frame, on the event loop, for each error the cog reports. The same lines are
in :mod:`linecache`, the cache tracebacks and logging already read source through, kept
per file and checked against the file's size and modification time before each use, so an
edited and reloaded cog shows its new lines.

The cog builds its events without the SDK's source step and fills the lines here with the
SDK's own formatting function (``sentry_sdk.utils.get_lines_from_file`` given no loader,
which is its line-cache path), so the frames carry what they would have carried.
"""

from __future__ import annotations

import linecache
from typing import Any

from sentry_sdk.utils import get_lines_from_file


def without_source_step(options: dict[str, Any] | None) -> dict[str, Any] | None:
    """``options`` for ``event_from_exception`` with the SDK's per-frame source read off.

    ``None`` where the cog does not fill the lines itself: where the owner turned source
    context off, and under the SDK's newer ``data_collection`` option, which decides the
    number of lines itself (there the SDK keeps doing it).
    """
    if not options or not options.get("include_source_context", True):
        return None
    collection = options.get("data_collection")
    if isinstance(collection, dict) and collection.get("provided_by_user"):
        return None
    return {**options, "include_source_context": False}


def add_source_lines(event: dict[str, Any], max_value_length: int | None) -> None:
    """Give every frame of ``event``'s exceptions that has none its lines of source."""
    exception = event.get("exception")
    values = exception.get("values") if isinstance(exception, dict) else None
    for value in values or ():
        stacktrace = value.get("stacktrace") if isinstance(value, dict) else None
        frames = stacktrace.get("frames") if isinstance(stacktrace, dict) else None
        for frame in frames or ():
            _fill(frame, max_value_length)


def _fill(frame: dict[str, Any], max_value_length: int | None) -> None:
    if "context_line" in frame:
        return
    path, lineno = frame.get("abs_path"), frame.get("lineno")
    if not isinstance(path, str) or not isinstance(lineno, int) or lineno < 1:
        return
    # Drops the entry when the file changed on disk since it was read (a stat, no read).
    linecache.checkcache(path)
    pre, line, post = get_lines_from_file(path, lineno - 1, max_value_length)
    frame["pre_context"], frame["context_line"], frame["post_context"] = pre, line, post

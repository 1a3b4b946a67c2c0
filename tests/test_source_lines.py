"""The source lines of an error event's frames: what the SDK would have sent, read cheaper.

The cog builds its error events without the SDK's per-frame read of each module from disk
and fills the lines from Python's line cache (core/source_lines.py). These tests hold it to
the SDK's own output, and to a file edited and reloaded while the bot runs.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

import discord.ext.test as dpytest
import sentry_sdk
from discord.ext import commands
from sentry_sdk.utils import event_from_exception

SOURCE_KEYS = ("abs_path", "lineno", "pre_context", "context_line", "post_context")


def _frames(event: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [
        tuple(frame.get(key) for key in SOURCE_KEYS)
        for value in event["exception"]["values"]
        for frame in value["stacktrace"]["frames"]
    ]


async def test_frames_carry_the_lines_the_sdk_reads(make_bot, sentry_flush):
    harness = await make_bot()
    await harness.message("!tools hammer")
    await dpytest.run_all_events()
    (sent,) = [e for e in sentry_flush().events() if "exception" in e]
    (error,) = harness.bot_errors
    # The SDK's own reading of the same exception, with its loader path, for comparison.
    expected, _ = event_from_exception(
        error.original, client_options=sentry_sdk.get_client().options
    )
    got, want = _frames(sent), _frames(expected)
    assert len(got) == len(want) >= 2  # the command's frame and discord.py's
    assert got == want
    assert all(frame[3] for frame in got)  # every frame has its line


async def test_an_edited_and_reloaded_module_shows_its_new_lines(make_bot, sentry_flush, tmp_path):
    module_path = tmp_path / "edited_helper.py"
    module_path.write_text("def explode():\n    raise ValueError('first version')\n")
    sys.path.insert(0, str(tmp_path))
    try:
        helper = importlib.import_module("edited_helper")
        harness = await make_bot()

        @commands.command()
        async def edited(ctx: commands.Context[Any]) -> None:
            helper.explode()

        harness.bot.add_command(edited)
        await harness.message("!edited")
        await dpytest.run_all_events()
        module_path.write_text(
            "# edited while the bot runs\n\ndef explode():\n    raise KeyError('second version')\n"
        )
        stat = module_path.stat()
        os.utime(module_path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10_000_000))
        importlib.reload(helper)
        await harness.message("!edited")
        await dpytest.run_all_events()
        events = [e for e in sentry_flush().events() if "exception" in e]
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("edited_helper", None)
    lines = [
        frame["context_line"]
        for event in events
        for value in event["exception"]["values"]
        for frame in value["stacktrace"]["frames"]
        if frame["abs_path"] == str(module_path)
    ]
    assert lines == [
        "    raise ValueError('first version')",
        "    raise KeyError('second version')",
    ]

"""The first error event of a process: what the SDK reads for it happens before, off the loop."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from tux_sentry_cog.testing import SentryEndpoint

# A fresh interpreter: the SDK keeps its package list for the life of the process, and
# this test process filled it long ago.
_SCRIPT = textwrap.dedent(
    """
    import sys, time
    import sentry_sdk.utils
    from tux_sentry_cog import SentryCogConfig
    from tux_sentry_cog.core.client import SentryConnection
    from tux_sentry_cog.core.scrubbing import Scrubber

    assert sentry_sdk.utils._installed_modules is None
    connection = SentryConnection(SentryCogConfig(dsn=sys.argv[1]), Scrubber(lambda: ()))
    connection.start()
    deadline = time.monotonic() + 10
    while sentry_sdk.utils._installed_modules is None and time.monotonic() < deadline:
        time.sleep(0.01)
    listed = sentry_sdk.utils._installed_modules or {}
    print("sentry-sdk" in listed and "discord.py" in listed)
    """
)


def test_the_package_list_is_read_at_start_not_at_the_first_event() -> None:
    """The SDK lists every installed package for the first error event, reading each
    one's metadata from disk in the capturing thread (the bot's event loop). Started, the
    cog has it read in a thread of its own, with no event captured yet."""
    with SentryEndpoint() as endpoint:
        result = subprocess.run(  # noqa: S603 - this interpreter, our own script
            [sys.executable, "-c", _SCRIPT, endpoint.dsn],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert endpoint.events() == []
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True", result.stdout + result.stderr

r"""A pytest plugin: run a bot's own test suite with the cog loaded into every bot it builds.

Loading the cog must change nothing the bot does. The way to check that for your bot is
your own suite, run twice::

    pytest -p tux_sentry_cog.testing.with_cog --sentry-cog=off --sentry-cog-record=without.json
    pytest -p tux_sentry_cog.testing.with_cog --sentry-cog-record=with.json \\
        --sentry-cog-compare=without.json

With ``--sentry-cog=on`` (the default) every bot the suite sets up (through
``Client._async_setup_hook``, which ``login`` and every dpytest-based suite on
discord.py 2.x call) gets ``tux_sentry_cog`` loaded right after its own setup hook,
against a loopback Sentry endpoint (so the SDK really builds and sends every event), and
with ``traces_sample_rate=1.0`` (so every command runs its transaction). A bot that sets
its own ``sentry_cog_config`` keeps it.

At the end the plugin says how many bots it loaded the cog into, how many faults the cog
logged, and, with ``--sentry-cog-compare``, which tests' outcomes differ from the
recorded run; any difference fails the session. A test whose outcome differs in runs
*without* the cog too is the suite's own flakiness: record two runs of each to tell.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import discord
import pytest

if TYPE_CHECKING:
    from tux_sentry_cog.testing.server import SentryEndpoint

__all__ = ["CogLoader"]

_log = logging.getLogger(__name__)

#: What ``login`` and dpytest-based suites call on every bot before it runs.
_SETUP_HOOK = "_async_setup_hook"


class _FaultCounter(logging.Handler):
    """Counts the cog's own logged faults (ERROR and above on ``tux_sentry_cog``)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.faults: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.faults.append(f"{record.name}: {record.getMessage()}")


class CogLoader:
    """Loads the cog into every bot right after its own setup hook, and keeps count."""

    def __init__(self, endpoint: SentryEndpoint | None) -> None:
        """Remember where the cog should send (``None``: local mode)."""
        self.endpoint = endpoint
        self.loaded = 0
        self.failed_loads: list[str] = []
        self._original: Any = None

    def install(self) -> None:
        """Wrap ``Client._async_setup_hook`` for the rest of the session."""
        original = getattr(discord.Client, _SETUP_HOOK)
        self._original = original
        loader = self

        async def _async_setup_hook(client: Any, *args: Any, **kwargs: Any) -> Any:
            result = await original(client, *args, **kwargs)
            await loader.load_into(client)
            return result

        setattr(discord.Client, _SETUP_HOOK, _async_setup_hook)

    def uninstall(self) -> None:
        """Put the original setup hook back."""
        if self._original is not None:
            setattr(discord.Client, _SETUP_HOOK, self._original)

    async def load_into(self, client: Any) -> None:
        """Load ``tux_sentry_cog`` into ``client`` if it is a ``commands.Bot`` without it."""
        from discord.ext import commands  # noqa: PLC0415 - imported once a bot exists

        from tux_sentry_cog.config import SentryCogConfig  # noqa: PLC0415 - see above

        if not isinstance(client, commands.Bot) or client.get_cog("Sentry") is not None:
            return
        if getattr(client, "sentry_cog_config", None) is None:
            dsn = self.endpoint.dsn if self.endpoint is not None else None
            client.sentry_cog_config = SentryCogConfig(dsn=dsn, traces_sample_rate=1.0)  # type: ignore[attr-defined]
        try:
            await client.load_extension("tux_sentry_cog")
            self.loaded += 1
        except Exception as exc:  # reported at the end; the bot's suite runs on
            self.failed_loads.append(f"{type(client).__name__}: {exc!r}")


def pytest_addoption(parser: pytest.Parser) -> None:
    """The plugin's options."""
    group = parser.getgroup("tux_sentry_cog", "run the suite with tux_sentry_cog loaded")
    group.addoption(
        "--sentry-cog",
        choices=("on", "off"),
        default="on",
        help="load tux_sentry_cog into every bot the suite sets up (default: on)",
    )
    group.addoption(
        "--sentry-cog-record",
        metavar="PATH",
        help="write every test's outcome to PATH (JSON)",
    )
    group.addoption(
        "--sentry-cog-compare",
        metavar="PATH",
        help="compare outcomes with a run recorded at PATH; a difference fails the session",
    )


class _Session:
    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.outcomes: dict[str, str] = {}
        self.loader: CogLoader | None = None
        self.faults = _FaultCounter()
        self.endpoint: SentryEndpoint | None = None
        self.changed: list[tuple[str, str | None, str | None]] = []
        self.sent = (0, 0)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        # The first failing phase decides; a pass needs the call phase to pass.
        if report.failed:
            self.outcomes.setdefault(report.nodeid, f"{report.when} failed")
        elif report.skipped:
            self.outcomes.setdefault(report.nodeid, "skipped")
        elif report.when == "call":
            self.outcomes.setdefault(report.nodeid, "passed")

    def pytest_sessionstart(self, session: pytest.Session) -> None:  # noqa: ARG002
        logging.getLogger("tux_sentry_cog").addHandler(self.faults)
        if self.config.getoption("--sentry-cog") == "on":
            from tux_sentry_cog.testing.server import (  # noqa: PLC0415 - only when on
                SentryEndpoint,
            )

            self.endpoint = SentryEndpoint().__enter__()
            self.loader = CogLoader(self.endpoint)
            self.loader.install()

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:  # noqa: ARG002
        logging.getLogger("tux_sentry_cog").removeHandler(self.faults)
        if self.loader is not None:
            self.loader.uninstall()
        if self.endpoint is not None:
            import sentry_sdk  # noqa: PLC0415 - only when on

            sentry_sdk.flush(timeout=2.0)  # the session is over: blocking is fine here
            self.sent = (len(self.endpoint.events()), len(self.endpoint.transactions()))
            self.endpoint.__exit__(None, None, None)
        record = self.config.getoption("--sentry-cog-record")
        if record:
            Path(record).write_text(json.dumps(self.outcomes, indent=1, sort_keys=True))
        compare = self.config.getoption("--sentry-cog-compare")
        if compare:
            before: dict[str, str] = json.loads(Path(compare).read_text())
            for nodeid in sorted(set(before) | set(self.outcomes)):
                if before.get(nodeid) != self.outcomes.get(nodeid):
                    self.changed.append((nodeid, before.get(nodeid), self.outcomes.get(nodeid)))
            if self.changed and session.exitstatus == 0:
                session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        write = terminalreporter.write_line
        terminalreporter.section("tux_sentry_cog")
        if self.loader is not None:
            write(f"cog loaded into {self.loader.loaded} bots")
            events, transactions = self.sent
            write(f"sent to the loopback Sentry: {events} events, {transactions} transactions")
            for failure in self.loader.failed_loads:
                write(f"  load failed: {failure}")
        else:
            write("cog not loaded (--sentry-cog=off)")
        write(f"faults the cog logged: {len(self.faults.faults)}")
        for fault in self.faults.faults[:10]:
            write(f"  {fault}")
        counts: dict[str, int] = {}
        for outcome in self.outcomes.values():
            counts[outcome] = counts.get(outcome, 0) + 1
        write("outcomes: " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items())))
        if self.config.getoption("--sentry-cog-compare"):
            write(f"tests whose outcome changed: {len(self.changed)}")
            for nodeid, before, after in self.changed:
                write(f"  {nodeid}: {before} -> {after}")


def pytest_configure(config: pytest.Config) -> None:
    """Register the session's bookkeeping."""
    config.pluginmanager.register(_Session(config), "tux_sentry_cog_with_cog")

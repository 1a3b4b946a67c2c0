"""pytest fixtures for bots that use tux_sentry_cog.

Enable with ``pytest_plugins = ["tux_sentry_cog.testing.plugin"]`` in a ``conftest.py``.

- ``sentry_endpoint``: a started :class:`SentryEndpoint`; after the test, any SDK client
  still open is closed, so tests never send to each other's endpoints.
- ``sentry_flush``: flushes the SDK and waits until the endpoint has what was sent.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
import sentry_sdk

from tux_sentry_cog.testing.server import SentryEndpoint, reset_sentry_sdk

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

__all__ = ["sentry_endpoint", "sentry_flush"]


@pytest.fixture
def sentry_endpoint() -> Iterator[SentryEndpoint]:
    """A loopback Sentry; the SDK is reset after the test."""
    with SentryEndpoint() as endpoint:
        try:
            yield endpoint
        finally:
            reset_sentry_sdk()


@pytest.fixture
def sentry_flush(sentry_endpoint: SentryEndpoint) -> Callable[[], SentryEndpoint]:
    """Return a function that flushes the SDK and returns the endpoint."""

    def flush() -> SentryEndpoint:
        before = sentry_endpoint.requests
        sentry_sdk.flush(timeout=5.0)
        # The transport hands the last envelope over just as flush returns: give the
        # server thread a moment to record it.
        sentry_endpoint.wait_for(lambda e: e.requests > before, timeout=0.2)
        return sentry_endpoint

    return flush

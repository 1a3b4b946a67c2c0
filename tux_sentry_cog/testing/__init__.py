"""Helpers for testing a bot that uses tux_sentry_cog, and for this package's own tests.

- :class:`SentryEndpoint`: a loopback Sentry that records the envelopes the SDK sends.
- :class:`InteractionDriver`: slash commands through a real bot configured with dpytest.
- ``tux_sentry_cog.testing.plugin``: pytest fixtures built on both.
- ``tux_sentry_cog.testing.with_cog``: a pytest plugin that runs a bot's own suite with
  the cog loaded into every bot it sets up, and reports what changed.
"""

from tux_sentry_cog.testing.interactions import (
    EPHEMERAL,
    InteractionDriver,
    InteractionResult,
    RecordedRequest,
)
from tux_sentry_cog.testing.server import (
    PUBLIC_KEY,
    ReceivedEnvelope,
    SentryEndpoint,
    reset_sentry_sdk,
)

__all__ = [
    "EPHEMERAL",
    "PUBLIC_KEY",
    "InteractionDriver",
    "InteractionResult",
    "ReceivedEnvelope",
    "RecordedRequest",
    "SentryEndpoint",
    "reset_sentry_sdk",
]

"""``DiscordIntegration``: the package as a sentry-sdk integration (identifier ``discord``).

The sentry-python shape (its ``arq``, ``huey`` and ``asyncio`` integrations):
``setup_once`` patches the framework once per process, and each patched function asks at
call time whether it should do anything, passing through untouched otherwise. Here the
question is "does a loaded cog serve this bot?" (:func:`~tux_sentry_cog.adapter.patches.hooks_for`),
not "is the integration enabled?": the cog also works in local mode, with no client.

An owner may list it in ``sentry_sdk.init(integrations=[DiscordIntegration(...)])``; the
cog then takes its configuration from it when the bot sets none. Otherwise the cog adds
it to the active client when it loads (:func:`ensure_integration`), so events list it
among the SDK's integrations.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import sentry_sdk
import sentry_sdk.integrations
from sentry_sdk.integrations import Integration

from tux_sentry_cog.adapter.patches import patch_discord

if TYPE_CHECKING:
    from tux_sentry_cog.config import SentryCogConfig

__all__ = ["IDENTIFIER", "DiscordIntegration", "ensure_integration", "integration_config"]

_log = logging.getLogger(__name__)

#: The integration's identifier in ``client.integrations``.
IDENTIFIER = "discord"


class DiscordIntegration(Integration):
    """Sentry for discord.py bots, through ``await bot.load_extension("tux_sentry_cog")``.

    Args:
        config: The cog's configuration for bots that set no ``bot.sentry_cog_config``
            (which still wins when set); the environment is read when neither is given.
    """

    identifier = IDENTIFIER
    origin = f"auto.discord.{IDENTIFIER}"

    def __init__(self, config: SentryCogConfig | None = None) -> None:
        """Keep the options; nothing is patched before ``setup_once``."""
        self.config = config

    @staticmethod
    def setup_once() -> None:
        """Patch discord.py's entry points, once per process (idempotent)."""
        patch_discord()


def integration_config(client: Any = None) -> SentryCogConfig | None:
    """The config an owner gave ``DiscordIntegration`` in ``sentry_sdk.init``, if any."""
    client = client if client is not None else sentry_sdk.get_client()
    try:
        integration = client.get_integration(IDENTIFIER)
    except Exception:
        return None
    return getattr(integration, "config", None)


def ensure_integration(client: Any) -> None:
    """Patch discord.py, and add the integration to ``client`` when it lacks it.

    The SDK sets integrations up only inside ``sentry_sdk.init``; for a client the owner
    initialised without this one, the cog goes through the same public function
    (``sentry_sdk.integrations.setup_integrations``) and records the result in the
    client's ``integrations``, as ``init`` does. Where either is missing or changed, one
    warning says so; the patches are in place anyway (they do not need the client).
    """
    patch_discord()
    if client is None or not client.is_active():
        return  # local mode: the patches are all the cog needs
    try:
        if client.get_integration(IDENTIFIER) is not None:
            return
        setup = getattr(sentry_sdk.integrations, "setup_integrations", None)
        integrations = getattr(client, "integrations", None)
        if setup is None or not isinstance(integrations, dict):
            _log.warning(
                "tux_sentry_cog: sentry-sdk %s cannot take an integration after init; "
                "events will not list the discord integration (everything else works)",
                sentry_sdk.VERSION,
            )
            return
        integrations.update(setup([DiscordIntegration()], with_defaults=False))
    except Exception:
        _log.exception("tux_sentry_cog could not add its integration to the Sentry client")

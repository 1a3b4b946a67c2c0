"""Slash commands through a real bot, without Discord.

dpytest drives prefix commands but has no interactions. This feeds an
``INTERACTION_CREATE`` payload to the bot's connection state, exactly as the gateway
would, and intercepts the interaction's HTTP responses in discord.py's webhook adapter,
so the command tree, checks, transformers, error handlers and responses all run for
real and nothing touches the network.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from dataclasses import dataclass, field
from typing import Any

import discord
from discord.webhook import async_ as webhook_async

__all__ = ["EPHEMERAL", "InteractionDriver", "InteractionResult", "RecordedRequest"]

#: Message flag of an ephemeral response.
EPHEMERAL = 64

# Ids from now: discord.py dates an interaction by its id and treats one older than
# 15 minutes as expired (its responses then go out as plain messages).
_ids = itertools.count(discord.utils.time_snowflake(discord.utils.utcnow()))


def _snowflake() -> str:
    return str(next(_ids))


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One HTTP request the interaction made (a response, an edit, a follow-up)."""

    method: str
    path: str
    payload: dict[str, Any] | None


def _nested(subcommands: list[str], leaf: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Options of a (sub)command path as Discord sends them.

    The last name is a subcommand (type 1) holding the leaf options; one before it is
    its group (type 2).
    """
    options = leaf
    for depth, sub in enumerate(reversed(subcommands)):
        options = [{"name": sub, "type": 1 if depth == 0 else 2, "options": options}]
    return options


@dataclass(slots=True)
class InteractionResult:
    """What one interaction did, once its task finished."""

    interaction_id: int
    requests: list[RecordedRequest] = field(default_factory=list)

    @property
    def responses(self) -> list[dict[str, Any]]:
        """Message payloads sent (initial response data, edits and follow-ups)."""
        found: list[dict[str, Any]] = []
        for request in self.requests:
            payload = request.payload or {}
            if request.path.endswith("/callback"):
                data = payload.get("data")
                if isinstance(data, dict):
                    found.append(data)
            elif request.method in {"PATCH", "POST"}:
                found.append(payload)
        return found

    @property
    def choices(self) -> list[dict[str, Any]]:
        """The autocomplete choices sent back (``name``/``value`` dicts), if any."""
        for response in self.responses:
            if "choices" in response:
                return list(response["choices"])
        return []

    @property
    def first_response(self) -> dict[str, Any]:
        """The first message payload; ``AssertionError`` if there was none."""
        responses = self.responses
        assert responses, "the interaction sent no response"  # noqa: S101 - a test helper
        return responses[0]

    def is_ephemeral(self) -> bool:
        """True if the first response was ephemeral."""
        return bool(int(self.first_response.get("flags", 0)) & EPHEMERAL)


class _RecordingAdapter(webhook_async.AsyncWebhookAdapter):
    """discord.py's webhook adapter with the network replaced by a recorder."""

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.by_token: dict[str, list[RecordedRequest]] = {}

    async def request(
        self,
        route: Any,
        session: Any,  # noqa: ARG002 - the signature of the method replaced
        *,
        payload: dict[str, Any] | None = None,
        multipart: list[dict[str, Any]] | None = None,
        **_: Any,
    ) -> Any:
        if payload is None and multipart:
            # Files go as multipart; the JSON part holds the message.
            for part in multipart:
                if part.get("name") == "payload_json":
                    payload = json.loads(part["value"])
        token = str(route.webhook_token)
        self.by_token.setdefault(token, []).append(
            RecordedRequest(route.method, route.path, payload)
        )
        message = {
            "id": _snowflake(),
            "channel_id": "0",
            "type": 0,
            "content": "",
            "author": {"id": "1", "username": "bot", "discriminator": "0", "avatar": None},
            "attachments": [],
            "embeds": [],
            "mentions": [],
            "mention_roles": [],
            "pinned": False,
            "mention_everyone": False,
            "tts": False,
            "timestamp": "2026-01-01T00:00:00+00:00",
            "edited_timestamp": None,
            "flags": 0,
        }
        if isinstance(payload, dict):
            data = payload.get("data") if route.path.endswith("/callback") else payload
            if isinstance(data, dict):
                kept = {"content", "embeds", "flags"}
                message.update({k: v for k, v in data.items() if k in kept})
        if route.path.endswith("/callback"):
            flags = int(str(message.get("flags") or 0))
            return {
                "interaction": {
                    "id": str(route.webhook_id),
                    "type": (payload or {}).get("type", 4),
                    "response_message_id": message["id"],
                    "response_message_loading": False,
                    "response_message_ephemeral": bool(flags & EPHEMERAL),
                },
                "resource": {"type": (payload or {}).get("type", 4), "message": message},
            }
        if route.method == "DELETE":
            return None
        return message


def _option_type(value: object) -> int:
    if isinstance(value, bool):
        return 5
    if isinstance(value, int):
        return 4
    if isinstance(value, float):
        return 10
    return 3


class InteractionDriver:
    """Sends slash commands to a bot configured with dpytest.

    Args:
        bot: The bot, already passed to ``dpytest.configure``.
    """

    def __init__(self, bot: discord.Client) -> None:
        """Point the bot's command tree at dpytest's connection state."""
        self.bot = bot
        tree = getattr(bot, "tree", None)
        # dpytest replaces the connection state and loses the tree on the way.
        bot._connection._command_tree = tree
        self._adapter = _RecordingAdapter()

    def _member_payload(self, member: discord.Member | discord.User) -> dict[str, Any]:
        user = {
            "id": str(member.id),
            "username": member.name,
            "discriminator": member.discriminator,
            "global_name": None,
            "avatar": None,
            "bot": member.bot,
        }
        if not isinstance(member, discord.Member):
            return user
        return {
            "user": user,
            "roles": [str(r.id) for r in member.roles[1:]],
            "joined_at": "2026-01-01T00:00:00+00:00",
            "deaf": False,
            "mute": False,
            "flags": 0,
            "permissions": str(member.guild_permissions.value),
        }

    async def slash(
        self,
        name: str,
        options: dict[str, Any] | None = None,
        *,
        member: discord.Member | discord.User,
        channel: discord.abc.GuildChannel | discord.abc.PrivateChannel | None = None,
        guild_command: bool = False,
        timeout: float = 10.0,  # noqa: ASYNC109 - bounds the wait for the tree's task
    ) -> InteractionResult:
        """Run ``/name`` (``"group sub"`` for subcommands) and wait until it finished.

        Args:
            name: The command's qualified name.
            options: Option values by name.
            member: Who invokes it: a guild member, or a user for a DM.
            channel: Where; the guild's first text channel by default.
            guild_command: The command is registered in the member's guild only (as
                Discord says so in the interaction data).
            timeout: Seconds to wait for the command's task.
        """
        parts = name.split()
        leaf_options: list[dict[str, Any]] = [
            {"name": key, "type": _option_type(value), "value": value}
            for key, value in (options or {}).items()
        ]
        data: dict[str, Any] = {
            "id": _snowflake(),
            "name": parts[0],
            "type": 1,
            "options": _nested(parts[1:], leaf_options),
        }
        if guild_command and isinstance(member, discord.Member):
            data["guild_id"] = str(member.guild.id)
        return await self._send(2, data, member=member, channel=channel, timeout=timeout)

    async def autocomplete(
        self,
        name: str,
        options: dict[str, Any],
        focused: str,
        *,
        member: discord.Member | discord.User,
        timeout: float = 10.0,  # noqa: ASYNC109 - see slash()
    ) -> InteractionResult:
        """Ask ``/name`` (``"group sub"`` for subcommands) for choices of ``focused``.

        The choices sent back are in ``result.choices``.
        """
        parts = name.split()
        leaf = [
            {"name": key, "type": _option_type(value), "value": value, "focused": key == focused}
            for key, value in options.items()
        ]
        options_tree = _nested(parts[1:], leaf)
        data = {"id": _snowflake(), "name": parts[0], "type": 1, "options": options_tree}
        return await self._send(4, data, member=member, channel=None, timeout=timeout)

    async def user_context_menu(
        self,
        name: str,
        target: discord.Member,
        *,
        member: discord.Member,
        timeout: float = 10.0,  # noqa: ASYNC109 - see slash()
    ) -> InteractionResult:
        """Run the user context menu ``name`` on ``target``."""
        target_payload = self._member_payload(target)
        user = target_payload.pop("user")
        data = {
            "id": _snowflake(),
            "name": name,
            "type": 2,
            "target_id": str(target.id),
            "resolved": {
                "users": {str(target.id): user},
                "members": {str(target.id): target_payload},
            },
        }
        return await self._send(2, data, member=member, channel=None, timeout=timeout)

    async def message_context_menu(
        self,
        name: str,
        content: str,
        *,
        member: discord.Member,
        author: discord.Member | discord.User | None = None,
        timeout: float = 10.0,  # noqa: ASYNC109 - see slash()
    ) -> InteractionResult:
        """Run the message context menu ``name`` on a message saying ``content``.

        The target message is written by ``author`` (``member`` by default) in the
        member's guild's first text channel.
        """
        message_id = _snowflake()
        channel = member.guild.text_channels[0]
        user = self._member_payload(author or member)
        message = {
            "id": message_id,
            "channel_id": str(channel.id),
            "author": user.get("user", user),
            "content": content,
            "timestamp": "2026-01-01T00:00:00+00:00",
            "edited_timestamp": None,
            "tts": False,
            "mention_everyone": False,
            "mentions": [],
            "mention_roles": [],
            "attachments": [],
            "embeds": [],
            "pinned": False,
            "type": 0,
        }
        data = {
            "id": _snowflake(),
            "name": name,
            "type": 3,
            "target_id": message_id,
            "resolved": {"messages": {message_id: message}},
        }
        return await self._send(2, data, member=member, channel=None, timeout=timeout)

    async def component(
        self,
        custom_id: str,
        *,
        member: discord.Member | discord.User,
        component_type: int = 2,
        values: list[str] | None = None,
        timeout: float = 10.0,  # noqa: ASYNC109 - see slash()
    ) -> InteractionResult:
        """Press the component ``custom_id`` of a persistent view (``bot.add_view``).

        ``values`` are the options chosen in a select menu (``component_type=3``).
        """
        data: dict[str, Any] = {"custom_id": custom_id, "component_type": component_type}
        if values is not None:
            data["values"] = values
        return await self._send(3, data, member=member, channel=None, timeout=timeout)

    async def modal_submit(
        self,
        custom_id: str,
        values: dict[str, str],
        *,
        member: discord.Member | discord.User,
        timeout: float = 10.0,  # noqa: ASYNC109 - see slash()
    ) -> InteractionResult:
        """Submit the modal ``custom_id`` (stored with ``bot._connection.store_view``)."""
        rows = [
            {"type": 1, "components": [{"type": 4, "custom_id": key, "value": value}]}
            for key, value in values.items()
        ]
        data = {"custom_id": custom_id, "components": rows}
        return await self._send(5, data, member=member, channel=None, timeout=timeout)

    async def _send(
        self,
        interaction_type: int,
        data: dict[str, Any],
        *,
        member: discord.Member | discord.User,
        channel: Any,
        timeout: float,  # noqa: ASYNC109 - see slash()
    ) -> InteractionResult:
        bot = self.bot
        assert bot.user is not None  # noqa: S101 - dpytest.configure sets it
        interaction_id = _snowflake()
        token = f"interaction-token-{interaction_id}"
        payload: dict[str, Any] = {
            "id": interaction_id,
            "application_id": str(bot.application_id or bot.user.id),
            "type": interaction_type,
            "token": token,
            "version": 1,
            "data": data,
            "locale": "en-US",
            "app_permissions": "0",
            "attachment_size_limit": 8_388_608,
            "entitlements": [],
        }
        if isinstance(member, discord.Member):
            guild = member.guild
            channel = channel or guild.text_channels[0]
            payload["guild_id"] = str(guild.id)
            payload["member"] = self._member_payload(member)
            payload["channel"] = {"id": str(channel.id), "type": 0, "guild_id": str(guild.id)}
            payload["channel_id"] = str(channel.id)
        else:
            channel_id = channel.id if channel is not None else _snowflake()
            payload["user"] = self._member_payload(member)
            payload["channel"] = {"id": str(channel_id), "type": 1}
            payload["channel_id"] = str(channel_id)
        webhook_async.async_context.set(self._adapter)
        before = asyncio.all_tasks()
        bot._connection.parse_interaction_create(payload)  # type: ignore[arg-type]
        spawned = asyncio.all_tasks() - before
        if spawned:
            await asyncio.wait_for(asyncio.gather(*spawned, return_exceptions=True), timeout)
        return InteractionResult(int(interaction_id), self._adapter.by_token.pop(token, []))

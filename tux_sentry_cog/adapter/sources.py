"""What an error with no command behind it was about: listeners' arguments.

discord.py routes listener errors to ``Client.on_error`` with only the event's name and
arguments. The patched ``Client._run_event`` (:mod:`tux_sentry_cog.adapter.patches`)
sees the listener and its arguments; this module reads the guild, user and channel
they concern, without ever raising.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import discord

__all__ = ["EventSubjects", "describe_event_args", "event_source_name", "listener_cog"]


class EventSubjects(NamedTuple):
    """The guild, user and channel an event was about, where its arguments say."""

    guild: discord.Guild | None = None
    user: discord.abc.User | None = None
    channel: Any = None


def event_source_name(event_method: str) -> str:
    """The ``command.name`` of a listener error: the event method (``on_message``)."""
    return event_method if event_method.startswith("on_") else f"on_{event_method}"


def listener_cog(listener: Any) -> str | None:
    """The name of the cog a listener belongs to, if it is a cog's method."""
    owner = getattr(listener, "__self__", None)
    name = getattr(owner, "qualified_name", None)
    return name if isinstance(name, str) and hasattr(owner, "__cog_listeners__") else None


def _first(args: tuple[Any, ...], read: Any) -> Any:
    for arg in args:
        try:
            found = read(arg)
        except Exception:  # a partial object: the next argument may say
            found = None
        if found is not None:
            return found
    return None


def _guild(arg: Any) -> Any:
    if isinstance(arg, discord.Guild):
        return arg
    guild = getattr(arg, "guild", None)
    return guild if isinstance(guild, discord.Guild) else None


def _user(arg: Any) -> Any:
    if isinstance(arg, discord.abc.User):
        return arg
    for attribute in ("author", "user"):
        found = getattr(arg, attribute, None)
        if isinstance(found, discord.abc.User):
            return found
    return None


def _channel(arg: Any) -> Any:
    if isinstance(arg, discord.abc.GuildChannel | discord.abc.PrivateChannel | discord.Thread):
        return arg
    found = getattr(arg, "channel", None)
    return found if getattr(found, "id", None) is not None else None


def describe_event_args(args: tuple[Any, ...]) -> EventSubjects:
    """The guild, user and channel an event was about, if its arguments say."""
    return EventSubjects(_first(args, _guild), _first(args, _user), _first(args, _channel))

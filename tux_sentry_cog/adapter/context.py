"""Reads a command's context or an interaction into plain tags and contexts.

Two speeds: :func:`describe_source` runs for every command and reads only what is
already in memory (names and ids); :class:`SentryContextCollector` runs when an error is
reported and reads everything the event should carry. Every getter tolerates partial
objects (DMs, uncached guilds, partial members, missing permissions): a field it cannot
read is left out, it never raises.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

import discord
from discord import app_commands
from discord.ext import commands
from discord.ext.commands import view as _view_module
from discord.ext.commands.view import StringView

from tux_sentry_cog.core.reporter import ErrorReport, error_context
from tux_sentry_cog.core.system import SystemInfo

if TYPE_CHECKING:
    from tux_sentry_cog.core.runs import CommandRun

__all__ = [
    "ContextOrInteraction",
    "SentryContextCollector",
    "SourceInfo",
    "describe_source",
    "event_values",
    "run_secrets",
    "run_values",
    "shard_of",
]

_log = logging.getLogger(__name__)

ContextOrInteraction = commands.Context[Any] | discord.Interaction[Any]

_PRIMITIVES = (str, int, float, bool)
_COMPONENT_TYPES = (discord.InteractionType.component, discord.InteractionType.modal_submit)


class SourceInfo(NamedTuple):
    """What every run needs to know up front, read cheaply.

    A named tuple rather than a frozen dataclass: as immutable, and built for every
    command at a fraction of the cost (a frozen dataclass sets each field through
    ``object.__setattr__``). Change a field with ``info._replace(name=...)``.

    Attributes:
        name: Qualified command name, or a fixed label ("unknown") — never user text.
        command_type: The ``command.type`` tag (docs/events.md).
        cog: Cog name, if any.
        guild_id: Guild id or ``"dm"``.
        user_id: The invoking user's id.
        shard_id: Shard of the guild on sharded bots, else ``None``.
        known: False when no command matched (an unknown name): such a run gets no
            transaction, so typing ``!anything`` cannot spend the transaction quota.
    """

    name: str
    command_type: str
    cog: str | None
    guild_id: str
    user_id: int | None
    shard_id: int | None
    known: bool = True

    def tags(self) -> dict[str, str]:
        """The source's share of the event tags."""
        tags = {
            "command.name": self.name,
            "command.type": self.command_type,
            "cog": self.cog or "none",
            "guild.id": self.guild_id,
        }
        if self.shard_id is not None:
            tags["shard.id"] = str(self.shard_id)
        return tags


_HYBRID = (commands.HybridCommand, commands.HybridGroup)


def _is_hybrid(command: object) -> bool:
    return isinstance(command, _HYBRID)


def _app_command_cog(command: object) -> str | None:
    binding = getattr(command, "binding", None)
    if isinstance(binding, commands.Cog):
        return binding.qualified_name
    return None


def shard_of(client: Any, guild: discord.Guild | None) -> int | None:
    """The shard ``guild``'s events come through on a sharded bot, else ``None``."""
    if getattr(client, "shard_count", None) is None:
        return None
    if guild is not None:
        return guild.shard_id
    return 0  # DMs go through shard 0


def _interaction_command_type(interaction: discord.Interaction[Any], command: object) -> str:
    if interaction.type is discord.InteractionType.autocomplete:
        return "autocomplete"
    if interaction.type is discord.InteractionType.component:
        return "component"
    if interaction.type is discord.InteractionType.modal_submit:
        return "modal"
    if isinstance(command, app_commands.ContextMenu):
        return "context_menu"
    if isinstance(command, commands.hybrid.HybridAppCommand):
        return "hybrid"
    return "slash"


def describe_source(source: ContextOrInteraction) -> SourceInfo:
    """Read the name, type, cog, guild, user and shard of a command's source."""
    if isinstance(source, commands.Context):
        command = source.command
        guild = source.guild
        if command is None:
            return SourceInfo(
                "unknown",
                "prefix",
                None,
                str(guild.id) if guild is not None else "dm",
                source.author.id,
                shard_of(source.bot, guild),
                known=False,
            )
        return SourceInfo(
            command.qualified_name,
            "hybrid" if isinstance(command, _HYBRID) else "prefix",
            command.cog_name,
            str(guild.id) if guild is not None else "dm",
            source.author.id,
            shard_of(source.bot, guild),
        )
    interaction = source
    app_command = interaction.command
    name = "unknown"
    cog: str | None = None
    if isinstance(app_command, commands.hybrid.HybridAppCommand):
        name = app_command.wrapped.qualified_name
        cog = app_command.wrapped.cog_name
    elif app_command is not None:
        name = app_command.qualified_name
        cog = _app_command_cog(app_command)
    guild_id = interaction.guild_id
    return SourceInfo(
        name=name,
        command_type=_interaction_command_type(interaction, app_command),
        cog=cog,
        guild_id=str(guild_id) if guild_id is not None else "dm",
        user_id=interaction.user.id,
        shard_id=shard_of(interaction.client, interaction.guild),
        known=app_command is not None or interaction.type in _COMPONENT_TYPES,
    )


_QUOTES = "\"'\u201c\u201d\u2018\u2019\u00ab\u00bb\u300c\u300d"

# Every character discord.py's argument parser takes for a quote: text without one has
# its words for arguments, and skips the parser. The set is discord.py's private name;
# without it every argument text goes through the parser (the same result, slower).
_QUOTE_CHARS: frozenset[str] | None = (
    frozenset(_found)
    if isinstance(_found := getattr(_view_module, "_all_quotes", None), (set, frozenset))
    else None
)

#: Most argument tokens read from one message (a bound on a pathological input).
MAX_TOKENS = 200


def _words(value: str) -> Iterator[str]:
    """``value`` and its whitespace words, each also without surrounding quotes."""
    yield value
    words = value.split()
    if len(words) > 1 or (words and words[0] != value):
        for word in words[:MAX_TOKENS]:
            yield word
            stripped = word.strip(_QUOTES)
            if stripped and stripped != word:
                yield stripped


def _tokens(text: str) -> Iterator[str]:
    """The arguments of ``text`` as discord.py's parser reads them (quotes honoured).

    Without a quote character they are its words, which :func:`_words` gave already.
    """
    if _QUOTE_CHARS is not None and _QUOTE_CHARS.isdisjoint(text):
        return
    view = StringView(text)
    for _ in range(MAX_TOKENS):
        view.skip_ws()
        if view.eof:
            return
        try:
            token = view.get_quoted_word()
        except commands.ArgumentParsingError:
            token = view.read_rest()
        if not token:
            return
        yield token


def _argument_text(ctx: commands.Context[Any], content: str) -> str:
    """What follows the prefix and the invoked command names in ``content``."""
    prefix = ctx.prefix
    rest = content
    if isinstance(prefix, str) and prefix:
        if not content.startswith(prefix):
            return content.strip()
        rest = content[len(prefix) :]
    # discord.py reads each name as one word after optional whitespace.
    for name in (*ctx.invoked_parents, ctx.invoked_with):
        if name:
            rest = rest.lstrip()
            rest = rest.removeprefix(name)
    return rest.strip()


def _converted(values: Iterable[Any], depth: int = 0) -> Iterator[str]:
    """Converted argument values that print as what the user typed or derived from it."""
    for value in values:
        if isinstance(value, str):
            yield from _words(value)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            yield str(value)
        elif isinstance(value, (list, tuple)) and depth == 0:  # Greedy, variadic
            yield from _converted(value, depth + 1)


def _context_values(ctx: commands.Context[Any]) -> Iterator[str]:
    message = ctx.message
    content = message.content if message is not None else ""
    if content:
        yield content
    if ctx.command is None and ctx.invoked_with:
        yield ctx.invoked_with  # the unknown word of a mistyped command
    rest = _argument_text(ctx, content) if content else ""
    if rest:
        yield from _words(rest)
        for token in _tokens(rest):
            yield from _words(token)
    # ctx.args starts with the cog and the context; only plain values are read.
    yield from _converted(a for a in ctx.args if not isinstance(a, (commands.Context,
                                                                     commands.Cog)))
    yield from _converted(ctx.kwargs.values())


def _option_values(options: Iterable[Mapping[str, Any]]) -> Iterator[str]:
    for option in options:
        value = option.get("value")
        if isinstance(value, str):
            yield from _words(value)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            yield str(value)
        nested = option.get("options")
        if isinstance(nested, list):
            yield from _option_values(nested)


def _interaction_values(data: Mapping[str, Any]) -> Iterator[str]:
    options = data.get("options")
    if isinstance(options, list):  # slash options, the focused autocomplete value
        yield from _option_values(options)
    components = data.get("components")
    if isinstance(components, list):  # modal text inputs: what the user typed
        yield from _modal_values(components)
    selected = data.get("values")
    if isinstance(selected, list):  # select menus
        for value in selected:
            if isinstance(value, str):
                yield from _words(value)
    resolved = data.get("resolved")
    messages = resolved.get("messages") if isinstance(resolved, Mapping) else None
    if isinstance(messages, Mapping):  # a message context menu's target
        for target in messages.values():
            content = target.get("content") if isinstance(target, Mapping) else None
            if isinstance(content, str) and content:
                yield from _words(content)


def run_values(source: ContextOrInteraction) -> tuple[str, ...]:
    """What the user of ``source`` typed or chose, in every form the bot may echo it.

    The message content, the argument text, each argument as discord.py's parser reads
    it (quoted ones whole) and its words, converted plain values, slash options, the
    focused autocomplete value, modal inputs, select values and a message context
    menu's target content. None of it is ever put into an event; the scrubber removes
    it from the free text the bot's own code produced (exception messages, frame
    variables, log lines).
    """
    if isinstance(source, commands.Context):
        if source.interaction is not None:
            return run_values(source.interaction)
        return tuple(_context_values(source))
    data: Mapping[str, Any] = source.data or {}
    return tuple(_interaction_values(data))


def run_secrets(source: ContextOrInteraction) -> tuple[str, ...]:
    """The secrets of ``source``: an interaction's token (it is in its REST URLs)."""
    interaction = source.interaction if isinstance(source, commands.Context) else source
    token = getattr(interaction, "token", None) if interaction is not None else None
    return (token,) if isinstance(token, str) and token else ()


def event_values(args: Iterable[Any]) -> tuple[str, ...]:
    """The user text in a listener's arguments: message contents, interaction values."""
    values: list[str] = []
    for arg in args:
        if isinstance(arg, discord.Message):
            if arg.content:
                values.extend(_words(arg.content))
        elif isinstance(arg, discord.RawMessageUpdateEvent):
            content = arg.data.get("content")
            if isinstance(content, str) and content:
                values.extend(_words(content))
        elif isinstance(arg, discord.Interaction):
            values.extend(_interaction_values(arg.data or {}))
        elif isinstance(arg, commands.Context):
            values.extend(_context_values(arg))
    return tuple(values)


def _modal_values(components: Iterable[Any]) -> Iterator[str]:
    for component in components:
        if not isinstance(component, Mapping):
            continue
        value = component.get("value")
        if isinstance(value, str):
            yield from _words(value)
        inner = component.get("components")
        if isinstance(inner, list):
            yield from _modal_values(inner)


def _safe(getter: Callable[[], Any]) -> Any:
    """Run one getter; a partial object leaves that field out instead of failing."""
    try:
        return getter()
    except Exception:
        return None


def _describe_value(value: Any, send_pii: bool) -> dict[str, Any]:
    described: dict[str, Any] = {"type": type(value).__name__}
    object_id = getattr(value, "id", None)
    if isinstance(object_id, int):
        # Discord objects are named by id, never by their text.
        described["id"] = str(object_id)
    elif send_pii:
        described["value"] = value if isinstance(value, _PRIMITIVES) else repr(value)[:500]
    return described


class SentryContextCollector:
    """Collects the event contexts of docs/events.md from a command context or an interaction.

    Args:
        send_pii: Include usernames and parameter values.
        system: Source of the ``system`` context; a fresh one if not given.
    """

    def __init__(self, send_pii: bool = False, system: SystemInfo | None = None) -> None:
        """Keep the PII setting and the system-info source."""
        self.send_pii = send_pii
        self.system = system or SystemInfo(framework_version=discord.__version__)

    def collect_error_context(
        self,
        error: BaseException,
        source: ContextOrInteraction,
        additional_context: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Every event context group for ``error`` raised from ``source``.

        Groups: ``error``, ``command``, ``discord_user``, ``guild``, ``channel``,
        ``system``, ``performance``, plus ``additional_context``.
        """
        info = describe_source(source)
        contexts: dict[str, Any] = {
            "error": error_context(error),
            **self.collect_source_contexts(source, info),
            "system": self.system.snapshot(),
            "performance": {"response_time_ms": None, "database_query_count": 0},
        }
        contexts.update(additional_context or {})
        return contexts

    def build_report(
        self,
        error: BaseException,
        source: ContextOrInteraction,
        run: CommandRun | None,
        handled: bool,
        info: SourceInfo | None = None,
    ) -> ErrorReport:
        """The :class:`ErrorReport` for ``error`` raised while running ``source``.

        ``info`` overrides what :func:`describe_source` reads (a component's run is
        named after its view and callback, for example).
        """
        info = info or describe_source(source)
        user_id = info.user_id
        user: dict[str, Any] | None = None
        if user_id is not None:
            user = {"id": str(user_id)}
            if self.send_pii:
                author = _author(source)
                user["username"] = _safe(lambda: author.name)
                user["name"] = _safe(lambda: author.display_name)
        return ErrorReport(
            error,
            tags=info.tags(),
            contexts=self.collect_source_contexts(source, info),
            user=user,
            handled=handled,
            run=run,
        )

    def build_background_report(
        self,
        error: BaseException,
        command_type: str,
        name: str,
        *,
        cog: str | None = None,
        guild: discord.Guild | None = None,
        run: CommandRun | None = None,
        user: discord.abc.User | None = None,
        channel: Any = None,
        shard_id: int | None = None,
    ) -> ErrorReport:
        """The report of an error with no command behind it (a listener, a task loop).

        ``user`` and ``channel`` are what a listener's arguments were about, and
        ``shard_id`` the shard the event came through on a sharded bot.
        """
        tags = {
            "command.name": name,
            "command.type": command_type,
            "cog": cog or "none",
            "guild.id": str(guild.id) if guild is not None else "none",
        }
        if shard_id is not None:
            tags["shard.id"] = str(shard_id)
        contexts: dict[str, dict[str, Any]] = {
            "command": {
                "name": name,
                "qualified_name": name,
                "type": command_type,
                "cog_name": cog,
                "parameters": {},
            },
        }
        if guild is not None:
            contexts["guild"] = self._guild_context(guild)
        if channel is not None:
            contexts["channel"] = _channel_context(channel)
        user_data: dict[str, Any] | None = None
        if user is not None:
            user_data = {"id": str(user.id)}
            contexts["discord_user"] = {"bot": bool(_safe(lambda: user.bot))}
            if self.send_pii:
                user_data["username"] = _safe(lambda: user.name)
                user_data["name"] = _safe(lambda: user.display_name)
        return ErrorReport(error, tags=tags, contexts=contexts, user=user_data, run=run)

    def collect_source_contexts(
        self, source: ContextOrInteraction, info: SourceInfo | None = None
    ) -> dict[str, dict[str, Any]]:
        """The ``command``, ``discord_user``, ``guild`` and ``channel`` contexts."""
        info = info or describe_source(source)
        contexts: dict[str, dict[str, Any]] = {}
        getters: tuple[tuple[str, Callable[[], dict[str, Any]]], ...] = (
            ("command", lambda: self._command(source, info)),
            ("discord_user", lambda: self._user(source)),
            ("guild", lambda: self._guild(source)),
            ("channel", lambda: self._channel(source)),
        )
        for name, getter in getters:
            try:
                contexts[name] = getter()
            except Exception:
                _log.debug("context %s unavailable", name, exc_info=True)
                contexts[name] = {"unavailable": True}
        return contexts

    def _command(self, source: ContextOrInteraction, info: SourceInfo) -> dict[str, Any]:
        return {
            "name": info.name,
            "qualified_name": info.name,
            "type": info.command_type,
            "cog_name": info.cog,
            "parameters": self._parameters(source),
        }

    def _parameters(self, source: ContextOrInteraction) -> dict[str, Any]:
        values: dict[str, Any] = {}
        if isinstance(source, commands.Context):
            command = source.command
            if command is None:
                return {}
            names = list(command.clean_params)
            # ctx.args holds self and ctx before the command's own positional arguments.
            positional = list(source.args)[len(source.args) - len(names) :] if names else []
            given = dict(zip(names, positional, strict=False))
            given.update(source.kwargs)
            for name in names:
                if name in given:
                    values[name] = _describe_value(given[name], self.send_pii)
                else:
                    values[name] = {"type": "unparsed"}
            return values
        namespace = _safe(lambda: source.namespace)
        if namespace is not None:
            for name, value in namespace:
                values[name] = _describe_value(value, self.send_pii)
        return values

    @staticmethod
    def _user(source: ContextOrInteraction) -> dict[str, Any]:
        author = _author(source)
        context: dict[str, Any] = {"bot": bool(_safe(lambda: author.bot))}
        permissions = _permissions(source)
        if permissions is not None:
            context["permissions"] = list(_permission_names(permissions.value))
        return context

    @classmethod
    def _guild(cls, source: ContextOrInteraction) -> dict[str, Any]:
        guild = source.guild
        if guild is None:
            guild_id = getattr(source, "guild_id", None)
            return {"id": str(guild_id) if guild_id else "dm"}
        return cls._guild_context(guild)

    @staticmethod
    def _guild_context(guild: discord.Guild) -> dict[str, Any]:
        return {
            "id": str(guild.id),
            "name": _safe(lambda: guild.name),
            "member_count": _safe(lambda: guild.member_count),
            "features": sorted(_safe(lambda: guild.features) or []),
            "premium_tier": _safe(lambda: guild.premium_tier),
        }

    @staticmethod
    def _channel(source: ContextOrInteraction) -> dict[str, Any]:
        return _channel_context(source.channel)


def _channel_context(channel: Any) -> dict[str, Any]:
    if channel is None:
        return {"id": None}
    is_nsfw = getattr(channel, "is_nsfw", None)
    return {
        "id": str(channel.id),
        "name": _safe(lambda: getattr(channel, "name", None)) or "dm",
        "type": _safe(lambda: str(channel.type)),
        "nsfw": bool(_safe(is_nsfw)) if callable(is_nsfw) else False,
    }


@functools.lru_cache(maxsize=256)
def _permission_names(value: int) -> tuple[str, ...]:
    """The names of the permissions set in ``value`` (administrator implies every other).

    Cached by value: a guild's members share a handful of permission sets, and naming one
    walks all ~50 flags.
    """
    permissions = discord.Permissions(value)
    if permissions.administrator:
        return ("administrator",)
    return tuple(name for name, allowed in permissions if allowed)


def _author(source: ContextOrInteraction) -> Any:
    if isinstance(source, commands.Context):
        return source.author
    return source.user


def _permissions(source: ContextOrInteraction) -> discord.Permissions | None:
    if isinstance(source, discord.Interaction):
        found = _safe(lambda: source.permissions)
    else:
        channel = source.channel
        author = source.author
        found = None
        if isinstance(author, discord.Member) and hasattr(channel, "permissions_for"):
            found = _safe(lambda: channel.permissions_for(author))
    return found if isinstance(found, discord.Permissions) else None

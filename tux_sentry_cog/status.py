"""``/sentry status`` and ``/sentry test``: the bot owner's view of the cog.

Two parts, kept apart so the rendering is testable without Discord:

- :func:`build_status_embed` turns a :class:`~tux_sentry_cog.core.status.StatusSnapshot`
  into one embed. It is pure, and the embed stays inside Discord's limits whatever the
  snapshot holds (thousands of groups, hundreds of shards, huge command names).
- :class:`StatusCommands` is a cog mixin with the hybrid group ``sentry`` (so both
  ``/sentry status`` and ``!sentry status`` work). Only the bot's owner may use it: the
  single policy is :meth:`StatusCommands._owner_only`, which every command of the group
  runs first, in both forms. Anyone else gets one short refusal (ephemeral as a slash
  command) and nothing else; the bot's own error handlers see no error. The slash
  form answers ephemerally; the prefix form answers in the owner's DMs, never in the
  channel.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from typing import TYPE_CHECKING, Any, Final, Self

import discord
import sentry_sdk
from discord import app_commands
from discord.ext import commands

from tux_sentry_cog._version import __version__
from tux_sentry_cog.core.payload import OwnCrumbData
from tux_sentry_cog.core.runs import current_run

if TYPE_CHECKING:
    from collections.abc import Sequence

    from discord.abc import Snowflake
    from discord.ext.commands.bot import BotBase

    from tux_sentry_cog.config import SentryCogConfig
    from tux_sentry_cog.core.client import SentryConnection
    from tux_sentry_cog.core.status import StatusSnapshot

__all__ = [
    "DM_FAILED_TEXT",
    "EMBED_FIELD_NAMES",
    "LOCAL_MODE_TEXT",
    "NOT_OWNER_TEXT",
    "REFUSED_TEXT",
    "TEST_EVENT_MESSAGE",
    "StatusCommands",
    "build_status_embed",
]

_log = logging.getLogger(__name__)

# Discord's embed limits (https://discord.com/developers/docs/resources/message#embed-object-embed-limits).
MAX_TITLE: Final = 256
MAX_DESCRIPTION: Final = 4096
MAX_FIELD_NAME: Final = 256
MAX_FIELD_VALUE: Final = 1024
MAX_FIELDS: Final = 25
MAX_TOTAL: Final = 6000

#: The embed's fields, in order; bot owners' docs and tests refer to them by name.
EMBED_FIELD_NAMES: Final = (
    "Sentry",
    "Commands",
    "Errors",
    "Top error groups",
    "Performance",
    "Resources",
    "Gateway",
    "Tasks",
)

#: Shown wherever the mode is, so nobody mistakes local counters for what Sentry has.
LOCAL_MODE_TEXT: Final = "local mode: nothing is sent"

#: Refusal of a non-owner; says nothing about the bot's state.
NOT_OWNER_TEXT: Final = "Only the bot's owner can use `/sentry`."

#: Refusal when another check (one of the bot's own) failed.
REFUSED_TEXT: Final = "You cannot use this command here."

#: Said in the channel when the prefix form cannot DM the owner; the status stays private.
DM_FAILED_TEXT: Final = "I could not send you a DM; use `/sentry status` instead."

#: Longest wait for Sentry's answer to ``/sentry test`` (seconds).
TEST_EVENT_WAIT: Final = 5.0

#: Message of the event ``/sentry test`` sends.
TEST_EVENT_MESSAGE: Final = "tux_sentry_cog test event"

# How much of each list is shown. Small on purpose: the embed is a glance, not a report.
_MAX_GROUPS = 5
_MAX_SLOWEST = 5
_MAX_ANOMALIES = 5
_MAX_SHARDS = 10
_MAX_GATEWAY_EVENTS = 5
_MAX_HELD_GROUPS = 2  # groups with events held back by the budget, in the Errors field
_MAX_LIMITS_TEXT = 360

# Most characters one user-controlled string takes in the embed, escaped. Five groups
# of _MAX_FINGERPRINT and their counts fit one field, whatever the fingerprints hold.
_MAX_NAME = 60
_MAX_FINGERPRINT = 150
_MAX_TEXT = 120
_MAX_HELD_GROUP = 50

# Budget of each field's value. Their sum plus the title, names and footer stays under
# MAX_TOTAL, so the final guard in build_status_embed only ever trims in corner cases.
_FIELD_BUDGET: Final = {
    "Sentry": 700,
    "Commands": 400,
    "Errors": 500,
    "Top error groups": MAX_FIELD_VALUE,
    "Performance": MAX_FIELD_VALUE,
    "Resources": 300,
    "Gateway": MAX_FIELD_VALUE,
    "Tasks": 600,
}

_ELLIPSIS = "…"
_NA = "n/a"

_MODE_TEXT: Final = {
    "external": "active (the bot's own Sentry client)",
    "owned": "active (initialised by the cog)",
    "local": LOCAL_MODE_TEXT,
}


# formatting helpers ---------------------------------------------------------------------


def _clip(text: str, limit: int) -> str:
    """Return ``text`` cut to at most ``limit`` characters, marked with an ellipsis."""
    if len(text) <= limit:
        return text
    if limit <= len(_ELLIPSIS):
        return text[:limit]
    return text[: limit - len(_ELLIPSIS)] + _ELLIPSIS


def _user_text(value: object, limit: int) -> str:
    """Make a string the embed shows but nobody vetted safe to show, in ``limit`` characters.

    Newlines would break the field's layout, markdown would restyle it, and a long
    value would crowd out the rest. The text is cut *before* escaping, so an escape
    sequence is never split, and cut shorter while the escaped form is over ``limit``
    (escaping can double a string).
    """
    flat = " ".join(str(value).split())
    cut = limit
    while True:
        escaped = discord.utils.escape_markdown(_clip(flat, cut))
        if len(escaped) <= limit or cut <= 1:
            return escaped or "(empty)"
        # Halved: an escaped character counts twice, so this converges without overshoot.
        cut -= max(1, (len(escaped) - limit + 1) // 2)


def _finite(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return value


def _ms(value: float | None) -> str:
    number = _finite(value)
    if number is None:
        return _NA
    if abs(number) >= 1000:  # noqa: PLR2004 - seconds read better than thousands of ms
        return f"{number / 1000:,.2f} s"
    return f"{number:,.1f} ms"


def _count(value: int) -> str:
    return f"{value:,}"


def _rate(value: float) -> str:
    number = _finite(value)
    return _NA if number is None else f"{number:,.2f}/min"


def _percent(part: int, whole: int) -> str:
    return f"{part / whole:.1%}" if whole > 0 else "0%"


def _duration(seconds: float | None) -> str:
    number = _finite(seconds)
    if number is None or number < 0:
        return _NA
    total = int(number)
    days, rest = divmod(total, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{days}d"] if days else []
    if days or hours:
        parts.append(f"{hours}h")
    if days or hours or minutes:
        parts.append(f"{minutes}m")
    parts.append(f"{secs}s")
    return " ".join(parts)


def _host_only(dsn_host: str) -> str:
    """The host of ``dsn_host`` even if a whole DSN was passed: a key never shows."""
    rest = dsn_host.split("://", 1)[-1]
    rest = rest.rsplit("@", 1)[-1]
    return rest.split("/", 1)[0].split("?", 1)[0]


def _fit_lines(lines: Sequence[str], limit: int, hidden: int = 0, noun: str = "more") -> str:
    """Join as many ``lines`` as fit in ``limit``, then say how many were left out.

    Args:
        lines: The lines, most important first.
        limit: Most characters of the result.
        hidden: Items already left out before ``lines`` (a list cut to its top few).
        noun: What the "… and N more" line counts.
    """
    kept: list[str] = []
    used = 0
    for index, line in enumerate(lines):
        left_out = hidden + len(lines) - index - 1
        tail = f"\n{_ELLIPSIS} and {left_out:,} {noun}" if left_out else ""
        cost = len(line) + (1 if kept else 0)
        if used + cost + len(tail) > limit:
            break
        kept.append(line)
        used += cost
    missing = hidden + len(lines) - len(kept)
    if missing:
        kept.append(f"{_ELLIPSIS} and {missing:,} {noun}")
    return _clip("\n".join(kept), limit) or "—"


# fields -----------------------------------------------------------------------------------


def _sentry_field(snapshot: StatusSnapshot) -> str:
    mode = _MODE_TEXT.get(snapshot.mode)
    if mode is None:
        mode = f"active ({_user_text(snapshot.mode, _MAX_NAME)})"
    lines = [f"**Mode:** {mode}"]
    if snapshot.transport_problem:
        # First after the mode, so it is seen even if the field is ever trimmed.
        lines.append(f"⚠️ **Transport problem:** {_user_text(snapshot.transport_problem, 300)}")
    host = _host_only(snapshot.dsn_host) if snapshot.dsn_host else None
    lines.append(f"**DSN host:** {_user_text(host, _MAX_TEXT) if host else _NA}")
    environment = snapshot.environment
    lines.append(f"**Environment:** {_user_text(environment, _MAX_TEXT) if environment else _NA}")
    release = snapshot.release
    lines.append(f"**Release:** {_user_text(release, _MAX_TEXT) if release else _NA}")
    rate = _finite(snapshot.sample_rate)
    lines.append(f"**Traces sample rate:** {'off' if rate is None else f'{rate * 100:g}%'}")
    return _fit_lines(lines, _FIELD_BUDGET["Sentry"], noun="lines")


def _commands_field(snapshot: StatusSnapshot) -> str:
    executed, failed = snapshot.commands_executed, snapshot.commands_failed
    user = snapshot.commands_user_errors
    lines = [
        f"**Executed:** {_count(executed)}",
        f"**Failed:** {_count(failed)} ({_percent(failed, executed)})",
        f"**User errors:** {_count(user)} ({_percent(user, executed)}, not failures)",
        f"**Error rate:** {_rate(snapshot.error_rate_1m)} (1 min)",
        f"{_rate(snapshot.error_rate_5m)} (5 min)",
        f"**User error rate:** {_rate(snapshot.user_error_rate_5m)} (5 min)",
    ]
    return _fit_lines(lines, _FIELD_BUDGET["Commands"], noun="lines")


def _errors_field(snapshot: StatusSnapshot) -> str:
    event_id = snapshot.last_event_id
    sent = snapshot.errors_sent
    lines = [
        (
            f"**Captured:** {_count(snapshot.errors_reported)} "
            f"({_count(snapshot.errors_user)} user errors)"
        ),
        (
            f"**Sent:** {'unknown' if sent is None else _count(sent)} "
            f"(accepted by Sentry, of {_count(snapshot.errors_queued)} queued)"
        ),
    ]
    if snapshot.errors_undelivered:
        lines.append(f"**Not delivered:** {_count(snapshot.errors_undelivered)}")
    if snapshot.errors_held_back:
        lines.append(f"**Held back by the budget:** {_count(snapshot.errors_held_back)}")
        lines.extend(
            f"· {_user_text(group, _MAX_HELD_GROUP)} — {_count(count)}"
            for group, count in snapshot.held_back_groups[:_MAX_HELD_GROUPS]
        )
    quiet = [
        f"{_count(count)} {what}"
        for count, what in (
            (snapshot.errors_ignored, "ignored"),
            (snapshot.errors_opted_out, "opted out"),
        )
        if count
    ]
    if quiet:
        lines.append(f"**Not sent by choice:** {', '.join(quiet)}")
    lines.append(f"**Last event id:** {f'`{_clip(event_id, 64)}`' if event_id else _NA}")
    if snapshot.instrumentation_faults:
        lines.append(
            f"**Cog faults:** {_count(snapshot.instrumentation_faults)} (see the bot's log)"
        )
    return _fit_lines(lines, _FIELD_BUDGET["Errors"], noun="lines")


def _groups_field(snapshot: StatusSnapshot) -> str:
    # Sorted here too: the snapshot promises "most frequent first", the embed must not
    # depend on it to be right.
    groups = sorted(snapshot.top_groups, key=lambda group: group[1], reverse=True)
    if not groups:
        return "No error group sent yet."
    shown = groups[:_MAX_GROUPS]
    lines = [
        f"{rank}. {_user_text(fingerprint, _MAX_FINGERPRINT)} — **{_count(count)}**"
        for rank, (fingerprint, count) in enumerate(shown, start=1)
    ]
    return _fit_lines(
        lines, _FIELD_BUDGET["Top error groups"], len(groups) - len(shown), "more groups"
    )


def _performance_field(snapshot: StatusSnapshot) -> str:
    budget = _FIELD_BUDGET["Performance"]
    slowest = sorted(snapshot.slowest, key=lambda command: _finite(command.p95_ms) or 0.0)
    slowest.reverse()
    shown = slowest[:_MAX_SLOWEST]
    slow_lines = [
        f"{_user_text(c.name, _MAX_NAME)}: p50 {_ms(c.p50_ms)} · p95 {_ms(c.p95_ms)} "
        f"({_count(c.samples)} runs)"
        for c in shown
    ]
    anomalies = list(snapshot.anomalies)[:_MAX_ANOMALIES]
    anomaly_lines = [
        f"{_user_text(a.command, _MAX_NAME)}: {_ms(a.observed_ms)} vs p50 "
        f"{_ms(a.baseline_p50_ms)}, {_duration(a.seconds_ago)} ago"
        for a in anomalies
    ]
    # Half the field each, so a long list of one kind never hides the other kind.
    half = budget // 2
    slow = (
        _fit_lines(slow_lines, half - 40, len(slowest) - len(shown), "more commands")
        if slow_lines
        else "No baseline yet."
    )
    recent = (
        _fit_lines(anomaly_lines, half - 40, len(snapshot.anomalies) - len(anomalies), "more")
        if anomaly_lines
        else "None."
    )
    return _clip(f"**Slowest (vs. baseline):**\n{slow}\n**Recent anomalies:**\n{recent}", budget)


def _resources_field(snapshot: StatusSnapshot) -> str:
    memory = _finite(snapshot.memory_mb)
    cpu = _finite(snapshot.cpu_percent)
    lines = [
        f"**Memory:** {_NA if memory is None else f'{memory:,.1f} MiB'}",
        f"**CPU:** {_NA if cpu is None else f'{cpu:.1f}%'}",
        f"**Event-loop lag:** {_ms(snapshot.event_loop_lag_ms)}",
        f"**Uptime:** {_duration(snapshot.uptime_s)}",
    ]
    return _fit_lines(lines, _FIELD_BUDGET["Resources"], noun="lines")


def _shard_key(item: tuple[int | None, float]) -> int:
    shard = item[0]
    return -1 if shard is None else shard


def _gateway_field(snapshot: StatusSnapshot) -> str:
    budget = _FIELD_BUDGET["Gateway"]
    latencies = sorted(snapshot.gateway_latency_ms.items(), key=_shard_key)
    shown = latencies[:_MAX_SHARDS]
    latency_lines = [
        f"{'Latency' if shard is None else f'Shard {shard}'}: {_ms(value)}"
        for shard, value in shown
    ]
    if len(latencies) > len(shown):
        # With many shards, the worst one matters more than the next in id order.
        finite = [(s, v) for s, v in latencies if _finite(v) is not None]
        if finite:
            worst_shard, worst = max(finite, key=lambda item: item[1])
            latency_lines.append(f"Slowest: shard {worst_shard} at {_ms(worst)}")
    limits = _limits_text(snapshot)
    half = (budget - len(limits)) // 2
    latency = (
        _fit_lines(latency_lines, half, len(latencies) - len(shown), "more shards")
        if latency_lines
        else "No latency measured yet."
    )
    events = list(snapshot.gateway_events)[-_MAX_GATEWAY_EVENTS:]
    event_lines = [_user_text(event, _MAX_TEXT) for event in events]
    recent = (
        _fit_lines(event_lines, half - 40, len(snapshot.gateway_events) - len(events), "more")
        if event_lines
        else "None."
    )
    return _clip(f"{latency}\n{limits}\n**Recent events:**\n{recent}", budget)


def _limits_text(snapshot: StatusSnapshot) -> str:
    """Discord's limits: 429s by scope, heartbeat warnings, reconnects, deadline misses.

    At most about 300 characters: shards beyond the first few are summed.
    """
    limits = snapshot.discord_limits
    scopes = limits.rate_limits_5m
    rate = (
        ", ".join(f"{scope} {count:,}" for scope, count in sorted(scopes.items()))
        if scopes
        else "none"
    )
    reconnects = sorted(limits.reconnects.items(), key=lambda item: _shard_key((item[0], 0.0)))
    shown = [
        f"{'gateway' if shard is None else f'shard {shard}'} {count:,}"
        for shard, count in reconnects[:_MAX_SHARDS]
    ]
    if len(reconnects) > _MAX_SHARDS:
        rest = sum(count for _, count in reconnects[_MAX_SHARDS:])
        shown.append(f"{len(reconnects) - _MAX_SHARDS} more shards {rest:,}")
    lines = [
        f"**REST 429s (5 min):** {rate}",
        (
            f"**Heartbeat warnings:** {limits.heartbeat_warnings_5m:,} in 5 min, "
            f"{limits.heartbeat_warnings:,} in all"
        ),
        f"**Reconnects:** {', '.join(shown) if shown else 'none'}",
        (
            f"**Interaction deadline misses:** {limits.deadline_misses_5m:,} in 5 min, "
            f"{limits.deadline_misses:,} in all"
        ),
    ]
    return _clip("\n".join(lines), _MAX_LIMITS_TEXT)


_MAX_TASKS = 8


def _tasks_field(snapshot: StatusSnapshot) -> str:
    if not snapshot.tasks:
        return "No loop has run yet."
    lines = []
    for task in snapshot.tasks[:_MAX_TASKS]:
        ago = "never" if task.seconds_ago is None else f"{task.seconds_ago:.0f}s ago"
        lines.append(
            f"{_user_text(task.name, _MAX_NAME)}: {ago}, {task.last_status or _NA}, "
            f"{task.failures_last_hour} failed in 1h"
        )
    more = len(snapshot.tasks) - min(len(snapshot.tasks), _MAX_TASKS)
    return _fit_lines(lines, _FIELD_BUDGET["Tasks"], more, "more loops")


def _enforce_total(embed: discord.Embed) -> None:
    """Trim the longest field values until the whole embed is within ``MAX_TOTAL``.

    The field budgets already keep it there; this guard makes the limit hold even if a
    budget or a formatter changes later.
    """
    while (excess := len(embed) - MAX_TOTAL) > 0:
        index, field = max(enumerate(embed.fields), key=lambda item: len(item[1].value or ""))
        value = field.value or ""
        keep = max(len(value) - excess, 2)
        embed.set_field_at(
            index, name=field.name or "—", value=_clip(value, keep), inline=field.inline
        )
        if keep == 2:  # noqa: PLR2004 - nothing shorter is left to trim
            break


def build_status_embed(snapshot: StatusSnapshot) -> discord.Embed:
    """Render ``snapshot`` as the ``/sentry status`` embed.

    Pure: reads only ``snapshot``, so tests call it with any data. The result has the
    fields of :data:`EMBED_FIELD_NAMES`, in that order, and respects every Discord embed
    limit whatever the snapshot holds.

    Args:
        snapshot: The cog's state at one moment.

    Returns:
        The embed; the DSN shows as its host only, never with its key.
    """
    if snapshot.mode == "local":
        colour = discord.Colour.light_grey()
    elif snapshot.transport_problem:
        colour = discord.Colour.orange()
    else:
        colour = discord.Colour.green()
    embed = discord.Embed(title=_clip("Sentry status", MAX_TITLE), colour=colour)
    values = (
        _sentry_field(snapshot),
        _commands_field(snapshot),
        _errors_field(snapshot),
        _groups_field(snapshot),
        _performance_field(snapshot),
        _resources_field(snapshot),
        _gateway_field(snapshot),
        _tasks_field(snapshot),
    )
    inline = (False, True, True, False, False, True, True, False)
    for name, value, is_inline in zip(EMBED_FIELD_NAMES, values, inline, strict=True):
        embed.add_field(
            name=_clip(name, MAX_FIELD_NAME),
            value=_clip(value, MAX_FIELD_VALUE) or "—",
            inline=is_inline,
        )
    embed.set_footer(text=f"tux_sentry_cog {__version__}")
    _enforce_total(embed)
    return embed


# commands ---------------------------------------------------------------------------------


async def _is_owner(ctx: commands.Context[Any]) -> bool:
    """``bot.is_owner``, failing closed: if the owner cannot be known, nobody is."""
    try:
        return bool(await ctx.bot.is_owner(ctx.author))
    except Exception:
        # With no owner_id set, discord.py asks Discord for the application's owner;
        # if that fails, refusing is the only safe answer.
        _log.warning("tux_sentry_cog could not determine the bot's owner", exc_info=True)
        return False


def _is_slash(ctx: commands.Context[Any]) -> bool:
    return ctx.interaction is not None


class StatusCommands(commands.Cog):
    """Cog mixin: the owner-only ``sentry`` command group (``status`` and ``test``).

    The concrete cog provides ``bot``, ``config``, ``connection`` and
    :meth:`status_snapshot`; they are declared here for type checking only.
    """

    bot: commands.Bot
    config: SentryCogConfig
    connection: SentryConnection

    def status_snapshot(self) -> StatusSnapshot:
        """Return the cog's state now; the concrete cog implements it.

        Raises:
            NotImplementedError: always, in the mixin.
        """
        raise NotImplementedError

    # registration -------------------------------------------------------------------------

    async def _inject(
        self,
        bot: BotBase,
        override: bool,
        guild: Snowflake | None,
        guilds: Sequence[Snowflake],
    ) -> Self:
        # The guild restriction must be on the app command before Bot.add_command hands
        # it to the tree, which happens in here, after the concrete cog's __init__ and
        # cog_load ran. Doing it here keeps it working however the concrete cog writes
        # those two (they need not call super()).
        self._restrict_to_status_guilds()
        return await super()._inject(bot, override, guild, guilds)

    def _restrict_to_status_guilds(self) -> None:
        """Register the slash group only in ``config.status_guild_ids``, if set.

        discord.py's ``app_commands.guilds`` decorator stores the ids as ``_guild_ids``
        on the command, and ``Bot.add_command`` passes that to the tree for hybrid
        groups; this sets the same attribute on this cog's own copy of the group, so
        another instance (or a reload with other guilds) is not affected. An empty
        tuple means global, like ``guilds=[]`` in discord.py. The tree is never synced
        here: syncing stays the bot owner's choice.
        """
        app_command = self.sentry_group.app_command
        ids = self.config.status_guild_ids
        app_command._guild_ids = list(ids) if ids else None  # noqa: SLF001 - see docstring

    # the owner-only policy ----------------------------------------------------------------

    async def _owner_only(self, ctx: commands.Context[Any]) -> bool:
        """Let only the bot's owner through; refuse anyone else, once, and say no more.

        The one place the policy lives; every command of the group starts with it. It
        is not a ``cog_check``: a failed check raises ``CheckFailure``, which discord.py
        always dispatches to the bot's own ``on_command_error`` too, so a bot whose
        handler answers failed checks would refuse a second time. Here nothing is
        raised: the refusal is recorded on the run as a ``NotOwner`` (a ``permission``
        error, status ``permission_denied``, sent only with ``capture_user_errors``),
        and answered once.
        """
        if await _is_owner(ctx):
            return True
        refusal = commands.NotOwner("the /sentry commands are for the bot's owner only")
        run = current_run.get()
        if run is not None:
            run.record_error(refusal)
        await self._refuse(ctx, refusal)
        return False

    async def cog_command_error(self, ctx: commands.Context[Any], error: Exception) -> None:
        """Refuse failed checks quietly; leave every other error to the usual paths.

        Both forms of hybrid commands end here. The owner check never raises (see
        :meth:`_owner_only`); a failed check here is one of the bot's own global checks.
        """
        if isinstance(error, commands.CheckFailure):
            await self._refuse(ctx, error)
            return
        # Having this handler silences discord.py's default error log for this cog's
        # commands; log like it would (the cog reports the error itself already, and
        # its own logger is not turned into Sentry events).
        _log.error(
            "Ignoring exception in command %s",
            ctx.command.qualified_name if ctx.command else "?",
            exc_info=(type(error), error, error.__traceback__),
        )

    async def _refuse(self, ctx: commands.Context[Any], error: commands.CheckFailure) -> None:
        form = "/" if _is_slash(ctx) else str(ctx.clean_prefix or "")
        name = ctx.command.qualified_name if ctx.command else "sentry"
        sentry_sdk.add_breadcrumb(
            category="security",
            message=f"non-owner tried {form}{name}",
            level="warning",
            data=OwnCrumbData(user_id=str(ctx.author.id), check=type(error).__name__),
        )
        text = NOT_OWNER_TEXT if isinstance(error, commands.NotOwner) else REFUSED_TEXT
        try:
            # ephemeral is ignored by the prefix form, which gets a plain short message.
            await ctx.send(text, ephemeral=True, allowed_mentions=discord.AllowedMentions.none())
        except discord.HTTPException:
            _log.warning("tux_sentry_cog could not send a refusal", exc_info=True)

    # commands ---------------------------------------------------------------------------
    # The arg-type ignores: mypy cannot solve the type variables of discord.py's hybrid
    # decorators for any callback (discord.py issue #9788); the commands work as typed.
    # default_permissions: once synced, Discord shows /sentry to administrators only
    # (the owner check still decides; a server admin is not the bot's owner).

    @commands.hybrid_group(  # type: ignore[arg-type]
        name="sentry",
        description="Sentry observability of this bot (owner only).",
    )
    @app_commands.default_permissions(administrator=True)
    async def sentry_group(self, ctx: commands.Context[Any]) -> None:
        """Show the Sentry status (``!sentry`` alone; the slash group needs a subcommand)."""
        if await self._owner_only(ctx):
            await self._send_status(ctx)

    @sentry_group.command(  # type: ignore[arg-type]
        name="status", description="Show the Sentry status of this bot."
    )
    async def sentry_status(self, ctx: commands.Context[Any]) -> None:
        """Show the Sentry status embed."""
        if await self._owner_only(ctx):
            await self._send_status(ctx)

    @sentry_group.command(  # type: ignore[arg-type]
        name="test", description="Send a test event to Sentry."
    )
    async def sentry_test(self, ctx: commands.Context[Any]) -> None:
        """Send a test event and say what Sentry answered (nothing is sent in local mode)."""
        if not await self._owner_only(ctx):
            return
        if not self.connection.active:
            text = f"Sentry is in {LOCAL_MODE_TEXT}; no test event was made."
        else:
            # Waiting for Sentry's answer can take longer than an interaction's 3 s.
            await ctx.defer(ephemeral=True)
            # A logentry, not capture_message's bare top-level message, which some
            # Sentry-protocol servers warn about (as for the cog's other messages).
            event_id = sentry_sdk.capture_event(
                {"logentry": {"message": TEST_EVENT_MESSAGE}, "level": "info"}
            )
            text = await self._test_outcome(event_id)
        await self._answer(ctx, text)

    async def _test_outcome(self, event_id: str | None) -> str:
        if not event_id:
            return "The test event was dropped before sending (a sampling or before_send)."
        ledger = self.connection.ledger
        if not ledger.deliveries_known:
            return f"Queued a test event: `{event_id}` (this transport cannot say if it arrived)."
        ledger.watch(event_id)
        deadline = time.monotonic() + TEST_EVENT_WAIT
        fate = ledger.fate(event_id)
        while fate is None and time.monotonic() < deadline:
            # The transport's thread answers; polling keeps the loop free meanwhile.
            await asyncio.sleep(0.05)
            fate = ledger.fate(event_id)
        if fate is None:
            return (
                f"Queued a test event: `{event_id}`; Sentry has not answered within "
                f"{TEST_EVENT_WAIT:g} s."
            )
        if fate.outcome == "delivered":
            return f"Sentry accepted the test event: `{event_id}`"
        return f"The test event `{event_id}` did not arrive: {fate.detail or fate.outcome}."

    async def _send_status(self, ctx: commands.Context[Any]) -> None:
        embed = build_status_embed(self.status_snapshot())
        if _is_slash(ctx):
            # Ephemeral: the owner's data is not for the channel.
            await ctx.send(
                embed=embed, ephemeral=True, allowed_mentions=discord.AllowedMentions.none()
            )
            return
        # The prefix form cannot be ephemeral: the embed goes to the owner's DMs.
        try:
            await ctx.author.send(embed=embed, allowed_mentions=discord.AllowedMentions.none())
        except discord.HTTPException:
            _log.info("tux_sentry_cog could not DM the status to the owner", exc_info=True)
            await ctx.send(DM_FAILED_TEXT, allowed_mentions=discord.AllowedMentions.none())

    async def _answer(self, ctx: commands.Context[Any], text: str) -> None:
        if _is_slash(ctx) or ctx.guild is None:
            await ctx.send(text, ephemeral=True, allowed_mentions=discord.AllowedMentions.none())
            return
        try:
            await ctx.author.send(text, allowed_mentions=discord.AllowedMentions.none())
        except discord.HTTPException:
            await ctx.send(DM_FAILED_TEXT, allowed_mentions=discord.AllowedMentions.none())

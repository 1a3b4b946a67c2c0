"""Configuration of the cog: code value, then environment, then default.

The bot owner either sets a complete :class:`SentryCogConfig` as ``bot.sentry_cog_config``
before loading the extension, or lets :meth:`SentryCogConfig.from_env` read the
environment. ``SentryCogConfig.from_env(send_pii=True)`` mixes both: the keyword values
win over the environment, the environment over the defaults.

A bad value fails the load with a :class:`ConfigError` that names the variable (or the
field) and the value, never with a stack of unrelated errors later on.
"""

from __future__ import annotations

import dataclasses
import difflib
import logging
import math
import os
from typing import TYPE_CHECKING, Any

from sentry_sdk.utils import BadDsn, Dsn

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from tux_sentry_cog.core.optout import RunDescription

__all__ = [
    "ENV_PREFIX",
    "ENV_VARIABLES",
    "ConfigError",
    "SentryCogConfig",
    "redact_dsn",
    "resolve_config",
    "unknown_variables",
    "warn_unknown_variables",
]

_log = logging.getLogger(__name__)

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})


class ConfigError(ValueError):
    """A configuration value is invalid; the message names the variable and the value."""


def redact_dsn(dsn: str) -> str:
    """Return ``dsn`` with its key replaced, safe to print in logs and errors.

    Everything before the last ``@`` is the key (and secret), however malformed the rest.
    """
    if "@" not in dsn:
        return dsn
    head, host = dsn.rsplit("@", 1)
    scheme, sep, _ = head.partition("://")
    prefix = f"{scheme}://" if sep else ""
    return f"{prefix}***@{host}"


def _parse_bool(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError("expected one of true/false, yes/no, on/off, 1/0")


def _parse_guild_ids(raw: str) -> tuple[int, ...]:
    ids: list[int] = []
    for part in raw.replace(";", ",").split(","):
        stripped = part.strip()
        if not stripped:
            continue
        if not stripped.isdigit():
            raise ValueError("expected a comma-separated list of guild ids")
        ids.append(int(stripped))
    return tuple(ids)


def _parse_user_ids(raw: str) -> tuple[int, ...]:
    try:
        return _parse_guild_ids(raw)
    except ValueError:
        raise ValueError("expected a comma-separated list of user ids") from None


def _validate_ids(value: tuple[int, ...]) -> None:
    if any(not isinstance(uid, int) or isinstance(uid, bool) or uid <= 0 for uid in value):
        raise ValueError("ids are positive integers")


def _parse_count(raw: str) -> int:
    stripped = raw.strip()
    if not stripped.isdigit():
        raise ValueError("expected a whole number, 0 or more (0 is unlimited)")
    return int(stripped)


def _validate_count(value: int) -> None:
    if value < 0:
        raise ValueError("expected a whole number, 0 or more (0 is unlimited)")


def _parse_names(raw: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def _validate_names(value: tuple[str, ...]) -> None:
    for name in value:
        if not isinstance(name, str) or not all(part.isidentifier() for part in name.split(".")):
            raise ValueError(f"{name!r} is not an exception name (Name or package.module.Name)")


def _validate_rate(value: float) -> None:
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise ValueError("expected a number between 0 and 1")


def _validate_positive(value: float) -> None:
    if not (math.isfinite(value) and value > 0):
        raise ValueError("expected a positive number")


def _validate_percent(value: float) -> None:
    if not (math.isfinite(value) and 0 < value <= 100):  # noqa: PLR2004
        raise ValueError("expected a number above 0 and at most 100")


def _validate_prefix(value: str) -> None:
    # Sentry metric names allow letters, digits, "_", "-" and "."; an empty prefix would
    # give names starting with a dot.
    if not value or not all(c.isalnum() or c in "_-." for c in value) or value.endswith("."):
        raise ValueError("expected letters, digits, '_', '-' or '.', not ending in '.'")


def _parse_log_level(text: str) -> str:
    return text.strip().upper()


def _validate_log_level(value: str) -> None:
    if value not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        raise ValueError("expected DEBUG, INFO, WARNING, ERROR or CRITICAL")


def _validate_dsn(value: str | None) -> None:
    if value is None:
        return
    try:
        Dsn(value)
    except BadDsn as exc:
        raise ValueError(f"not a valid Sentry DSN ({exc})") from None


def _validate_guild_ids(value: tuple[int, ...] | None) -> None:
    if value is not None and any(
        not isinstance(gid, int) or isinstance(gid, bool) or gid <= 0 for gid in value
    ):
        raise ValueError("guild ids are positive integers")


# field name -> (environment variable, parser, validator)
_FIELDS: dict[str, tuple[str, Callable[[str], Any], Callable[[Any], None] | None]] = {
    "dsn": ("SENTRY_DSN", str.strip, _validate_dsn),
    "environment": ("SENTRY_ENVIRONMENT", str.strip, None),
    "release": ("SENTRY_RELEASE", str.strip, None),
    "traces_sample_rate": ("TUX_SENTRY_TRACES_SAMPLE_RATE", float, _validate_rate),
    "metric_prefix": ("TUX_SENTRY_METRIC_PREFIX", str.strip, _validate_prefix),
    "flush_interval": ("TUX_SENTRY_FLUSH_INTERVAL", float, _validate_positive),
    "resource_interval": ("TUX_SENTRY_RESOURCE_INTERVAL", float, _validate_positive),
    "memory_threshold_mb": ("TUX_SENTRY_MEMORY_THRESHOLD_MB", float, _validate_positive),
    "cpu_threshold_percent": ("TUX_SENTRY_CPU_THRESHOLD_PERCENT", float, _validate_percent),
    "capture_user_errors": ("TUX_SENTRY_CAPTURE_USER_ERRORS", _parse_bool, None),
    "send_pii": ("TUX_SENTRY_SEND_PII", _parse_bool, None),
    "track_activity": ("TUX_SENTRY_TRACK_ACTIVITY", _parse_bool, None),
    "monitor_loops": ("TUX_SENTRY_MONITOR_LOOPS", _parse_bool, None),
    "discord_logs_level": ("TUX_SENTRY_DISCORD_LOGS_LEVEL", _parse_log_level, _validate_log_level),
    "status_guild_ids": ("TUX_SENTRY_STATUS_GUILD_IDS", _parse_guild_ids, _validate_guild_ids),
    "events_per_group_per_hour": (
        "TUX_SENTRY_EVENTS_PER_GROUP_PER_HOUR",
        _parse_count,
        _validate_count,
    ),
    "ignore_errors": ("TUX_SENTRY_IGNORE_ERRORS", _parse_names, _validate_names),
    "ignore_guild_ids": ("TUX_SENTRY_IGNORE_GUILD_IDS", _parse_guild_ids, _validate_ids),
    "ignore_user_ids": ("TUX_SENTRY_IGNORE_USER_IDS", _parse_user_ids, _validate_ids),
}

#: Fields set in code only (no environment variable).
_CODE_FIELDS = frozenset({"should_report"})

#: Every environment variable the cog reads, for documentation and tests.
ENV_VARIABLES: tuple[str, ...] = tuple(env for env, _, _ in _FIELDS.values())

#: The cog's own variables start with this; any other such name is a typo or a leftover.
ENV_PREFIX = "TUX_SENTRY_"


def unknown_variables(environ: Mapping[str, str] | None = None) -> list[tuple[str, str]]:
    """``(unknown variable, closest known name)`` for each ``TUX_SENTRY_*`` the cog ignores.

    A mistyped variable (``TUX_SENTRY_TRACE_SAMPLE_RATE``) would otherwise leave its
    setting at the default without a word.
    """
    env = os.environ if environ is None else environ
    known = [name for name in ENV_VARIABLES if name.startswith(ENV_PREFIX)]
    found: list[tuple[str, str]] = []
    for name in sorted(env):
        if name.startswith(ENV_PREFIX) and name not in known:
            closest = difflib.get_close_matches(name, known, n=1, cutoff=0.0)
            found.append((name, closest[0] if closest else known[0]))
    return found


def warn_unknown_variables(environ: Mapping[str, str] | None = None) -> None:
    """Log one warning per unknown ``TUX_SENTRY_*`` variable; never raises (called at load)."""
    try:
        for name, closest in unknown_variables(environ):
            _log.warning(
                "unknown environment variable %s is ignored; did you mean %s?", name, closest
            )
    except Exception:  # a warning about the environment must never fail the load
        _log.debug("could not check the environment for unknown variables", exc_info=True)


def _shown(field: str, value: object) -> str:
    if field == "dsn" and isinstance(value, str):
        return repr(redact_dsn(value))
    return repr(value)


@dataclasses.dataclass(frozen=True, slots=True)
class SentryCogConfig:
    """Everything the cog can be told, validated on construction.

    Attributes:
        dsn: Sentry DSN. ``None`` runs the cog in local mode unless the SDK is already
            initialised by the bot.
        environment: Sentry environment, when the cog initialises the SDK.
        release: Sentry release, when the cog initialises the SDK.
        traces_sample_rate: Share of command transactions sent, 0 to 1.
        metric_prefix: Prefix of every metric name (``tux`` gives ``tux.errors.total``).
        flush_interval: Seconds between metric flushes.
        resource_interval: Seconds between resource samples.
        memory_threshold_mb: Resident memory above which the bot is "high memory".
        cpu_threshold_percent: CPU percentage above which the bot is "high CPU".
        capture_user_errors: Send user-caused errors (bad input, checks, cooldowns,
            unknown commands) as events too, not only as metrics and breadcrumbs.
        send_pii: Send usernames, display names and parameter values.
        track_activity: Count messages and reactions as ``user_activity`` (opt-in: it
            adds a listener on every message).
        monitor_loops: Send Sentry Crons check-ins for the ``tasks`` loops of loaded
            cogs that run at most once a minute (docs/task-loops.md).
        discord_logs_level: With Sentry Logs on, the lowest level of discord.py's own
            log records (loggers ``discord`` and ``discord.*``) sent as logs;
            ``"WARNING"`` keeps its INFO chatter (connects, resumes, rate limits) out.
        status_guild_ids: Register ``/sentry`` only in these guilds; ``None`` is global.
        events_per_group_per_hour: Error events of one fingerprint sent per hour at
            most; the rest are counted, not sent (docs/discord-limits-and-noise.md).
            ``0`` is unlimited.
        ignore_errors: Exception names never sent as events (``ValueError``,
            ``mybot.errors.Quiet``); subclasses match too. Still counted.
        ignore_guild_ids: Guilds whose runs send nothing that carries them.
        ignore_user_ids: Users whose runs send nothing that carries them.
        should_report: Called with a :class:`~tux_sentry_cog.RunDescription` before
            anything about a run is sent; ``False`` opts the run out. A fault in it is
            logged and opts the run out.
    """

    dsn: str | None = None
    environment: str | None = None
    release: str | None = None
    traces_sample_rate: float = 1.0
    metric_prefix: str = "tux"
    flush_interval: float = 60.0
    resource_interval: float = 30.0
    memory_threshold_mb: float = 500.0
    cpu_threshold_percent: float = 80.0
    capture_user_errors: bool = False
    send_pii: bool = False
    track_activity: bool = False
    monitor_loops: bool = False
    discord_logs_level: str = "WARNING"
    status_guild_ids: tuple[int, ...] | None = None
    events_per_group_per_hour: int = 50
    ignore_errors: tuple[str, ...] = ()
    ignore_guild_ids: tuple[int, ...] = ()
    ignore_user_ids: tuple[int, ...] = ()
    should_report: Callable[[RunDescription], bool] | None = None

    def __post_init__(self) -> None:
        """Validate every field, naming the first bad one."""
        for field, (_, _, validate) in _FIELDS.items():
            value = getattr(self, field)
            expected = _EXPECTED_TYPES[field]
            if not isinstance(value, expected) or isinstance(value, bool) is not (
                bool in expected
            ):
                msg = f"SentryCogConfig.{field}={_shown(field, value)}: wrong type"
                raise ConfigError(msg)
            if validate is not None:
                try:
                    validate(value)
                except ValueError as exc:
                    msg = f"SentryCogConfig.{field}={_shown(field, value)}: {exc}"
                    raise ConfigError(msg) from None
        should_report: object = self.should_report  # set by the owner's code: any type
        if should_report is not None and not callable(should_report):
            msg = f"SentryCogConfig.should_report={should_report!r}: expected a callable"
            raise ConfigError(msg)

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, **overrides: Any
    ) -> SentryCogConfig:
        """Build a config from the environment, with ``overrides`` winning over it.

        Args:
            environ: The environment to read; ``os.environ`` by default.
            **overrides: Field values set in code.

        Raises:
            ConfigError: a variable or an override has a bad value.
        """
        env = os.environ if environ is None else environ
        unknown = set(overrides) - set(_FIELDS) - _CODE_FIELDS
        if unknown:
            raise ConfigError(f"SentryCogConfig has no field {min(unknown)!r}")
        values: dict[str, Any] = {}
        for field, (variable, parse, validate) in _FIELDS.items():
            if field in overrides or variable not in env:
                continue
            raw = env[variable]
            if not raw.strip() and field in _OPTIONAL_FIELDS:
                continue  # an empty optional variable means "unset", as the SDK reads it
            try:
                value = parse(raw)
                if validate is not None:
                    validate(value)
            except ValueError as exc:
                msg = f"{variable}={_shown(field, raw)}: {exc}"
                raise ConfigError(msg) from None
            values[field] = value
        values.update(overrides)
        return cls(**values)

    def with_changes(self, **changes: Any) -> SentryCogConfig:
        """Return a copy with ``changes`` applied (validated like any other config)."""
        return dataclasses.replace(self, **changes)


_OPTIONAL_FIELDS = frozenset({"dsn", "environment", "release", "status_guild_ids"})

_EXPECTED_TYPES: dict[str, tuple[type, ...]] = {
    "dsn": (str, type(None)),
    "environment": (str, type(None)),
    "release": (str, type(None)),
    "traces_sample_rate": (float, int),
    "metric_prefix": (str,),
    "flush_interval": (float, int),
    "resource_interval": (float, int),
    "memory_threshold_mb": (float, int),
    "cpu_threshold_percent": (float, int),
    "capture_user_errors": (bool,),
    "send_pii": (bool,),
    "track_activity": (bool,),
    "monitor_loops": (bool,),
    "discord_logs_level": (str,),
    "status_guild_ids": (tuple, type(None)),
    "events_per_group_per_hour": (int,),
    "ignore_errors": (tuple,),
    "ignore_guild_ids": (tuple,),
    "ignore_user_ids": (tuple,),
}


def resolve_config(code_value: object, environ: Mapping[str, str] | None = None) -> SentryCogConfig:
    """Return the config to use: the bot's own instance if it set one, else the environment.

    Raises:
        ConfigError: ``code_value`` is not a config, or the environment has a bad value.
    """
    if code_value is None:
        return SentryCogConfig.from_env(environ)
    if isinstance(code_value, SentryCogConfig):
        return code_value
    if dataclasses.is_dataclass(code_value) and type(code_value).__name__ == "SentryCogConfig":
        # unload_extension drops every tux_sentry_cog module from sys.modules, so after a
        # reload the bot's instance belongs to the previous import of this class.
        known = {f.name for f in dataclasses.fields(SentryCogConfig)}
        values = {f.name: getattr(code_value, f.name) for f in dataclasses.fields(code_value)}
        unknown = sorted(set(values) - known)
        if unknown:
            msg = f"bot.sentry_cog_config has a field this version does not know: {unknown[0]}"
            raise ConfigError(msg)
        return SentryCogConfig(**values)
    msg = f"bot.sentry_cog_config={type(code_value).__name__}: expected a SentryCogConfig"
    raise ConfigError(msg)

"""SentryCogConfig: defaults, environment parsing, validation, resolution (configuration.md)."""

from __future__ import annotations

import dataclasses
import logging

import pytest

from tux_sentry_cog.config import (
    ENV_VARIABLES,
    ConfigError,
    SentryCogConfig,
    redact_dsn,
    resolve_config,
    unknown_variables,
)

DSN_KEY = "0123456789abcdef0123456789abcdef"
DSN_SECRET = "fedcba9876543210fedcba9876543210"
GOOD_DSN = f"https://{DSN_KEY}@o1.ingest.sentry.io/1"


# --- defaults -----------------------------------------------------------------------------


def test_defaults_match_the_spec_table() -> None:
    config = SentryCogConfig()
    assert config.dsn is None
    assert config.environment is None
    assert config.release is None
    assert config.traces_sample_rate == 1.0
    assert config.metric_prefix == "tux"
    assert config.flush_interval == 60
    assert config.resource_interval == 30
    assert config.memory_threshold_mb == 500
    assert config.cpu_threshold_percent == 80
    assert config.capture_user_errors is False
    assert config.send_pii is False
    assert config.status_guild_ids is None
    assert config.monitor_loops is False


def test_empty_environment_gives_the_defaults() -> None:
    assert SentryCogConfig.from_env(environ={}) == SentryCogConfig()


def test_unrelated_variables_are_ignored() -> None:
    environ = {"PATH": "/usr/bin", "SENTRY_DSNX": "nonsense", "TUX_SENTRY_OTHER": "x"}
    assert SentryCogConfig.from_env(environ=environ) == SentryCogConfig()


def test_env_variables_are_the_spec_table() -> None:
    # The documented table of variables.
    assert set(ENV_VARIABLES) == {
        "TUX_SENTRY_TRACK_ACTIVITY",
        "TUX_SENTRY_MONITOR_LOOPS",
        "TUX_SENTRY_DISCORD_LOGS_LEVEL",
        "SENTRY_DSN",
        "SENTRY_ENVIRONMENT",
        "SENTRY_RELEASE",
        "TUX_SENTRY_TRACES_SAMPLE_RATE",
        "TUX_SENTRY_METRIC_PREFIX",
        "TUX_SENTRY_FLUSH_INTERVAL",
        "TUX_SENTRY_RESOURCE_INTERVAL",
        "TUX_SENTRY_MEMORY_THRESHOLD_MB",
        "TUX_SENTRY_CPU_THRESHOLD_PERCENT",
        "TUX_SENTRY_CAPTURE_USER_ERRORS",
        "TUX_SENTRY_SEND_PII",
        "TUX_SENTRY_STATUS_GUILD_IDS",
        "TUX_SENTRY_EVENTS_PER_GROUP_PER_HOUR",
        "TUX_SENTRY_IGNORE_ERRORS",
        "TUX_SENTRY_IGNORE_GUILD_IDS",
        "TUX_SENTRY_IGNORE_USER_IDS",
    }


def test_config_is_frozen() -> None:
    config = SentryCogConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.send_pii = True  # type: ignore[misc]


# --- every variable parsed ----------------------------------------------------------------

PARSED = [
    ("SENTRY_DSN", GOOD_DSN, "dsn", GOOD_DSN),
    ("SENTRY_DSN", f"  {GOOD_DSN}\n", "dsn", GOOD_DSN),
    ("SENTRY_ENVIRONMENT", "production", "environment", "production"),
    ("SENTRY_ENVIRONMENT", " staging ", "environment", "staging"),
    ("SENTRY_RELEASE", "mybot@1.2.3", "release", "mybot@1.2.3"),
    ("TUX_SENTRY_TRACES_SAMPLE_RATE", "0.25", "traces_sample_rate", 0.25),
    ("TUX_SENTRY_TRACES_SAMPLE_RATE", "0", "traces_sample_rate", 0.0),
    ("TUX_SENTRY_TRACES_SAMPLE_RATE", "1", "traces_sample_rate", 1.0),
    ("TUX_SENTRY_METRIC_PREFIX", "mybot", "metric_prefix", "mybot"),
    ("TUX_SENTRY_METRIC_PREFIX", "my-bot_2.prod", "metric_prefix", "my-bot_2.prod"),
    ("TUX_SENTRY_FLUSH_INTERVAL", "15", "flush_interval", 15.0),
    ("TUX_SENTRY_FLUSH_INTERVAL", "0.5", "flush_interval", 0.5),
    ("TUX_SENTRY_RESOURCE_INTERVAL", "7.5", "resource_interval", 7.5),
    ("TUX_SENTRY_MEMORY_THRESHOLD_MB", "1024", "memory_threshold_mb", 1024.0),
    ("TUX_SENTRY_CPU_THRESHOLD_PERCENT", "95", "cpu_threshold_percent", 95.0),
    ("TUX_SENTRY_CPU_THRESHOLD_PERCENT", "100", "cpu_threshold_percent", 100.0),
    ("TUX_SENTRY_CAPTURE_USER_ERRORS", "true", "capture_user_errors", True),
    ("TUX_SENTRY_CAPTURE_USER_ERRORS", "0", "capture_user_errors", False),
    ("TUX_SENTRY_SEND_PII", "yes", "send_pii", True),
    ("TUX_SENTRY_SEND_PII", "ON", "send_pii", True),
    ("TUX_SENTRY_SEND_PII", " True ", "send_pii", True),
    ("TUX_SENTRY_SEND_PII", "1", "send_pii", True),
    ("TUX_SENTRY_SEND_PII", "off", "send_pii", False),
    ("TUX_SENTRY_SEND_PII", "no", "send_pii", False),
    ("TUX_SENTRY_SEND_PII", "false", "send_pii", False),
    ("TUX_SENTRY_TRACK_ACTIVITY", "yes", "track_activity", True),
    ("TUX_SENTRY_TRACK_ACTIVITY", "0", "track_activity", False),
    ("TUX_SENTRY_MONITOR_LOOPS", "true", "monitor_loops", True),
    ("TUX_SENTRY_MONITOR_LOOPS", "off", "monitor_loops", False),
    ("TUX_SENTRY_DISCORD_LOGS_LEVEL", " info ", "discord_logs_level", "INFO"),
    ("TUX_SENTRY_STATUS_GUILD_IDS", "123456789012345678", "status_guild_ids",
     (123456789012345678,)),
    ("TUX_SENTRY_STATUS_GUILD_IDS", "1, 2,3", "status_guild_ids", (1, 2, 3)),
    ("TUX_SENTRY_STATUS_GUILD_IDS", "1;2", "status_guild_ids", (1, 2)),
    ("TUX_SENTRY_EVENTS_PER_GROUP_PER_HOUR", " 10 ", "events_per_group_per_hour", 10),
    ("TUX_SENTRY_EVENTS_PER_GROUP_PER_HOUR", "0", "events_per_group_per_hour", 0),
    ("TUX_SENTRY_IGNORE_ERRORS", "ValueError, mybot.errors.Quiet,", "ignore_errors",
     ("ValueError", "mybot.errors.Quiet")),
    ("TUX_SENTRY_IGNORE_GUILD_IDS", "123456789012345678, 7", "ignore_guild_ids",
     (123456789012345678, 7)),
    ("TUX_SENTRY_IGNORE_USER_IDS", "42;43", "ignore_user_ids", (42, 43)),
]


@pytest.mark.parametrize(
    ("variable", "raw", "field", "expected"),
    PARSED,
    ids=[f"{variable}={raw.strip()[:20]}" for variable, raw, _, _ in PARSED],
)
def test_each_variable_is_parsed(variable: str, raw: str, field: str, expected: object) -> None:
    config = SentryCogConfig.from_env(environ={variable: raw})
    assert getattr(config, field) == expected
    # nothing else moved
    others = {f.name for f in dataclasses.fields(SentryCogConfig)} - {field}
    for other in others:
        assert getattr(config, other) == getattr(SentryCogConfig(), other)


def test_every_variable_is_covered_by_the_parse_table() -> None:
    assert {variable for variable, _, _, _ in PARSED} == set(ENV_VARIABLES)


def test_all_variables_together() -> None:
    environ = {
        "SENTRY_DSN": GOOD_DSN,
        "SENTRY_ENVIRONMENT": "prod",
        "SENTRY_RELEASE": "r1",
        "TUX_SENTRY_TRACES_SAMPLE_RATE": "0.5",
        "TUX_SENTRY_METRIC_PREFIX": "bot",
        "TUX_SENTRY_FLUSH_INTERVAL": "10",
        "TUX_SENTRY_RESOURCE_INTERVAL": "5",
        "TUX_SENTRY_MEMORY_THRESHOLD_MB": "256",
        "TUX_SENTRY_CPU_THRESHOLD_PERCENT": "50",
        "TUX_SENTRY_CAPTURE_USER_ERRORS": "true",
        "TUX_SENTRY_SEND_PII": "true",
        "TUX_SENTRY_STATUS_GUILD_IDS": "42,43",
    }
    assert SentryCogConfig.from_env(environ=environ) == SentryCogConfig(
        dsn=GOOD_DSN,
        environment="prod",
        release="r1",
        traces_sample_rate=0.5,
        metric_prefix="bot",
        flush_interval=10.0,
        resource_interval=5.0,
        memory_threshold_mb=256.0,
        cpu_threshold_percent=50.0,
        capture_user_errors=True,
        send_pii=True,
        status_guild_ids=(42, 43),
    )


# --- bad values ---------------------------------------------------------------------------

BAD = [
    ("SENTRY_DSN", "not a dsn"),
    ("SENTRY_DSN", "ftp://o1.ingest.sentry.io/1"),
    ("SENTRY_DSN", "https://o1.ingest.sentry.io/1"),  # no public key
    ("TUX_SENTRY_TRACES_SAMPLE_RATE", "1.5"),
    ("TUX_SENTRY_TRACES_SAMPLE_RATE", "-0.1"),
    ("TUX_SENTRY_TRACES_SAMPLE_RATE", "half"),
    ("TUX_SENTRY_TRACES_SAMPLE_RATE", "nan"),
    ("TUX_SENTRY_METRIC_PREFIX", "my bot"),
    ("TUX_SENTRY_METRIC_PREFIX", "tux."),
    ("TUX_SENTRY_METRIC_PREFIX", "tux/metrics"),
    ("TUX_SENTRY_FLUSH_INTERVAL", "0"),
    ("TUX_SENTRY_FLUSH_INTERVAL", "-5"),
    ("TUX_SENTRY_FLUSH_INTERVAL", "soon"),
    ("TUX_SENTRY_FLUSH_INTERVAL", "inf"),
    ("TUX_SENTRY_RESOURCE_INTERVAL", "0"),
    ("TUX_SENTRY_RESOURCE_INTERVAL", "30s"),
    ("TUX_SENTRY_MEMORY_THRESHOLD_MB", "-1"),
    ("TUX_SENTRY_MEMORY_THRESHOLD_MB", "500MB"),
    ("TUX_SENTRY_CPU_THRESHOLD_PERCENT", "0"),
    ("TUX_SENTRY_CPU_THRESHOLD_PERCENT", "101"),
    ("TUX_SENTRY_CPU_THRESHOLD_PERCENT", "80%"),
    ("TUX_SENTRY_CAPTURE_USER_ERRORS", "maybe"),
    ("TUX_SENTRY_CAPTURE_USER_ERRORS", "2"),
    ("TUX_SENTRY_SEND_PII", "sure"),
    ("TUX_SENTRY_TRACK_ACTIVITY", "maybe"),
    ("TUX_SENTRY_MONITOR_LOOPS", "sometimes"),
    ("TUX_SENTRY_DISCORD_LOGS_LEVEL", "chatty"),
    ("TUX_SENTRY_STATUS_GUILD_IDS", "abc"),
    ("TUX_SENTRY_STATUS_GUILD_IDS", "1,two"),
    ("TUX_SENTRY_STATUS_GUILD_IDS", "-5"),
    ("TUX_SENTRY_STATUS_GUILD_IDS", "0"),
    ("TUX_SENTRY_EVENTS_PER_GROUP_PER_HOUR", "-1"),
    ("TUX_SENTRY_EVENTS_PER_GROUP_PER_HOUR", "2.5"),
    ("TUX_SENTRY_EVENTS_PER_GROUP_PER_HOUR", "lots"),
    ("TUX_SENTRY_IGNORE_ERRORS", "Value Error"),
    ("TUX_SENTRY_IGNORE_ERRORS", "mybot..Quiet"),
    ("TUX_SENTRY_IGNORE_GUILD_IDS", "guild"),
    ("TUX_SENTRY_IGNORE_GUILD_IDS", "0"),
    ("TUX_SENTRY_IGNORE_USER_IDS", "@someone"),
]


@pytest.mark.parametrize(("variable", "raw"), BAD, ids=[f"{v}={r}" for v, r in BAD])
def test_bad_value_names_variable_and_value(variable: str, raw: str) -> None:
    with pytest.raises(ConfigError) as info:
        SentryCogConfig.from_env(environ={variable: raw})
    message = str(info.value)
    assert variable in message
    assert repr(raw) in message


def test_every_variable_has_a_bad_value_case() -> None:
    # SENTRY_ENVIRONMENT and SENTRY_RELEASE accept any text, as the SDK does.
    free_text = {"SENTRY_ENVIRONMENT", "SENTRY_RELEASE"}
    assert {variable for variable, _ in BAD} == set(ENV_VARIABLES) - free_text


def test_first_bad_variable_fails_even_with_good_ones_around() -> None:
    environ = {"TUX_SENTRY_SEND_PII": "true", "TUX_SENTRY_FLUSH_INTERVAL": "never"}
    with pytest.raises(ConfigError, match="TUX_SENTRY_FLUSH_INTERVAL='never'"):
        SentryCogConfig.from_env(environ=environ)


def test_config_error_is_a_value_error() -> None:
    assert issubclass(ConfigError, ValueError)


# --- DSN keys never shown -----------------------------------------------------------------

BAD_DSNS = [
    pytest.param(f"ftp://{DSN_KEY}@o1.ingest.sentry.io/1", id="bad-scheme"),
    pytest.param(f"https://{DSN_KEY}@o1.ingest.sentry.io/", id="no-project"),
    pytest.param(f"https://{DSN_KEY}@o1.ingest.sentry.io/abc", id="bad-project"),
    pytest.param(f"https://{DSN_KEY}@o1.ingest.sentry.io:port/1", id="bad-port"),
    pytest.param(f"https://{DSN_KEY}:{DSN_SECRET}@/1", id="key-secret-no-host"),
]


@pytest.mark.parametrize("dsn", BAD_DSNS)
def test_bad_dsn_from_env_never_shows_the_key(dsn: str) -> None:
    with pytest.raises(ConfigError) as info:
        SentryCogConfig.from_env(environ={"SENTRY_DSN": dsn})
    message = str(info.value)
    assert "SENTRY_DSN" in message
    assert DSN_KEY not in message
    assert DSN_SECRET not in message
    assert redact_dsn(dsn) in message


@pytest.mark.parametrize("dsn", BAD_DSNS)
def test_bad_dsn_in_code_never_shows_the_key(dsn: str) -> None:
    with pytest.raises(ConfigError) as info:
        SentryCogConfig(dsn=dsn)
    message = str(info.value)
    assert "SentryCogConfig.dsn" in message
    assert DSN_KEY not in message
    assert DSN_SECRET not in message


@pytest.mark.parametrize(
    "dsn",
    [
        pytest.param(f"{DSN_KEY}@o1.ingest.sentry.io/1", id="no-scheme"),
        pytest.param(f"https:/{DSN_KEY}@o1.ingest.sentry.io/1", id="one-slash"),
        pytest.param(f"https//{DSN_KEY}@o1.ingest.sentry.io/1", id="no-colon"),
    ],
)
def test_mistyped_dsn_never_shows_the_key(dsn: str) -> None:
    with pytest.raises(ConfigError) as info:
        SentryCogConfig.from_env(environ={"SENTRY_DSN": dsn})
    assert DSN_KEY not in str(info.value)


def test_redact_dsn() -> None:
    assert redact_dsn(GOOD_DSN) == "https://***@o1.ingest.sentry.io/1"
    redacted = redact_dsn(f"https://{DSN_KEY}:{DSN_SECRET}@sentry.example.com:9000/7")
    assert redacted == "https://***@sentry.example.com:9000/7"
    # nothing to hide
    assert redact_dsn("https://o1.ingest.sentry.io/1") == "https://o1.ingest.sentry.io/1"


def test_good_dsn_is_kept_verbatim() -> None:
    assert SentryCogConfig(dsn=GOOD_DSN).dsn == GOOD_DSN


# --- overrides ----------------------------------------------------------------------------


def test_overrides_win_over_the_environment() -> None:
    environ = {"TUX_SENTRY_SEND_PII": "false", "TUX_SENTRY_METRIC_PREFIX": "envbot"}
    config = SentryCogConfig.from_env(environ=environ, send_pii=True)
    assert config.send_pii is True
    assert config.metric_prefix == "envbot"  # not overridden: from the environment


def test_override_skips_a_bad_environment_value_for_that_field() -> None:
    config = SentryCogConfig.from_env(
        environ={"TUX_SENTRY_FLUSH_INTERVAL": "never"}, flush_interval=5
    )
    assert config.flush_interval == 5


def test_override_with_none_unsets_an_environment_value() -> None:
    config = SentryCogConfig.from_env(environ={"SENTRY_DSN": GOOD_DSN}, dsn=None)
    assert config.dsn is None


def test_unknown_override_is_rejected() -> None:
    with pytest.raises(ConfigError, match="'sample_rate'"):
        SentryCogConfig.from_env(environ={}, sample_rate=0.5)


def test_bad_override_names_the_field() -> None:
    with pytest.raises(ConfigError, match=r"SentryCogConfig\.traces_sample_rate=2"):
        SentryCogConfig.from_env(environ={}, traces_sample_rate=2)


def test_with_changes_validates() -> None:
    config = SentryCogConfig()
    assert config.with_changes(send_pii=True).send_pii is True
    with pytest.raises(ConfigError, match="flush_interval"):
        config.with_changes(flush_interval=0)


# --- direct construction ------------------------------------------------------------------

BAD_FIELDS = [
    ("dsn", "nonsense"),
    ("dsn", 42),
    ("environment", 3),
    ("release", b"1.0"),
    ("traces_sample_rate", 1.01),
    ("traces_sample_rate", "1.0"),
    ("metric_prefix", ""),
    ("metric_prefix", "a b"),
    ("metric_prefix", None),
    ("flush_interval", 0),
    ("flush_interval", float("nan")),
    ("resource_interval", -1.0),
    ("memory_threshold_mb", "500"),
    ("cpu_threshold_percent", 150),
    ("capture_user_errors", "false"),
    ("capture_user_errors", 1),
    ("send_pii", None),
    ("send_pii", 0),
    ("status_guild_ids", [1, 2]),
    ("status_guild_ids", (0,)),
    ("status_guild_ids", "123"),
    ("events_per_group_per_hour", -1),
    ("events_per_group_per_hour", 2.5),
    ("events_per_group_per_hour", True),
    ("ignore_errors", "ValueError"),
    ("ignore_errors", ("not a name",)),
    ("ignore_guild_ids", [1]),
    ("ignore_guild_ids", (0,)),
    ("ignore_user_ids", (-3,)),
    ("should_report", "yes"),
]


@pytest.mark.parametrize(
    ("field", "value"), BAD_FIELDS, ids=[f"{f}={v!r}" for f, v in BAD_FIELDS]
)
def test_construction_validation_names_the_field(field: str, value: object) -> None:
    with pytest.raises(ConfigError) as info:
        SentryCogConfig(**{field: value})  # type: ignore[arg-type]
    message = str(info.value)
    assert f"SentryCogConfig.{field}=" in message
    assert repr(value) in message


NUMERIC_FIELDS = [
    "traces_sample_rate",
    "flush_interval",
    "resource_interval",
    "memory_threshold_mb",
    "cpu_threshold_percent",
]


@pytest.mark.parametrize("field", NUMERIC_FIELDS)
@pytest.mark.parametrize("value", [True, False])
def test_bools_rejected_for_numeric_fields(field: str, value: bool) -> None:
    with pytest.raises(ConfigError, match=f"SentryCogConfig.{field}={value!r}: wrong type"):
        SentryCogConfig(**{field: value})  # type: ignore[arg-type]


@pytest.mark.parametrize("field", NUMERIC_FIELDS)
def test_ints_accepted_for_numeric_fields(field: str) -> None:
    assert getattr(SentryCogConfig(**{field: 1}), field) == 1  # type: ignore[arg-type]


def test_guild_ids_tuple_accepted() -> None:
    assert SentryCogConfig(status_guild_ids=(1, 2)).status_guild_ids == (1, 2)


def test_guild_ids_of_wrong_item_type_raise_config_error() -> None:
    with pytest.raises(ConfigError, match="status_guild_ids"):
        SentryCogConfig(status_guild_ids=("1",))  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [(True,), (1.5,)], ids=["bool", "float"])
def test_guild_ids_must_be_ints(value: tuple[object, ...]) -> None:
    with pytest.raises(ConfigError, match="status_guild_ids"):
        SentryCogConfig(status_guild_ids=value)  # type: ignore[arg-type]


# --- empty optional variables -------------------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "field"),
    [
        ("SENTRY_DSN", "dsn"),
        ("SENTRY_ENVIRONMENT", "environment"),
        ("SENTRY_RELEASE", "release"),
        ("TUX_SENTRY_STATUS_GUILD_IDS", "status_guild_ids"),
    ],
)
@pytest.mark.parametrize("raw", ["", "   "], ids=["empty", "blank"])
def test_empty_optional_variable_means_unset(variable: str, field: str, raw: str) -> None:
    assert getattr(SentryCogConfig.from_env(environ={variable: raw}), field) is None


@pytest.mark.parametrize("variable", ["TUX_SENTRY_SEND_PII", "TUX_SENTRY_CAPTURE_USER_ERRORS"])
def test_empty_boolean_variable_is_false(variable: str) -> None:
    config = SentryCogConfig.from_env(environ={variable: ""})
    assert config == SentryCogConfig()


@pytest.mark.parametrize(
    "variable",
    [
        "TUX_SENTRY_TRACES_SAMPLE_RATE",
        "TUX_SENTRY_METRIC_PREFIX",
        "TUX_SENTRY_FLUSH_INTERVAL",
        "TUX_SENTRY_CPU_THRESHOLD_PERCENT",
    ],
)
def test_empty_required_variable_is_an_error(variable: str) -> None:
    with pytest.raises(ConfigError, match=f"{variable}=''"):
        SentryCogConfig.from_env(environ={variable: ""})


# --- resolve_config -----------------------------------------------------------------------


def test_resolve_none_reads_the_environment() -> None:
    config = resolve_config(None, environ={"TUX_SENTRY_METRIC_PREFIX": "fromenv"})
    assert config.metric_prefix == "fromenv"


def test_resolve_none_with_bad_environment_raises() -> None:
    with pytest.raises(ConfigError, match="TUX_SENTRY_SEND_PII='perhaps'"):
        resolve_config(None, environ={"TUX_SENTRY_SEND_PII": "perhaps"})


def test_resolve_instance_is_returned_as_is_and_env_ignored() -> None:
    mine = SentryCogConfig(metric_prefix="mine")
    resolved = resolve_config(mine, environ={"TUX_SENTRY_METRIC_PREFIX": "fromenv"})
    assert resolved is mine


@pytest.mark.parametrize(
    "value",
    [{"send_pii": True}, "SentryCogConfig()", 42, object()],
    ids=["dict", "str", "int", "object"],
)
def test_resolve_wrong_type_raises(value: object) -> None:
    with pytest.raises(ConfigError, match=f"bot.sentry_cog_config={type(value).__name__}"):
        resolve_config(value, environ={})


def test_resolve_other_dataclass_with_other_name_is_rejected() -> None:
    @dataclasses.dataclass(frozen=True)
    class OtherConfig:
        send_pii: bool = True

    with pytest.raises(ConfigError, match="OtherConfig"):
        resolve_config(OtherConfig(), environ={})


def _foreign_config_class() -> type:
    """A class object other than ours but also named SentryCogConfig, as after a reload."""

    @dataclasses.dataclass(frozen=True)
    class SentryCogConfig:
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
        status_guild_ids: tuple[int, ...] | None = None

    return SentryCogConfig


def test_resolve_converts_a_previous_import_of_the_class() -> None:
    foreign_class = _foreign_config_class()
    assert foreign_class is not SentryCogConfig
    assert foreign_class.__name__ == "SentryCogConfig"
    foreign = foreign_class(send_pii=True, metric_prefix="old", status_guild_ids=(7,))
    resolved = resolve_config(foreign, environ={"TUX_SENTRY_METRIC_PREFIX": "fromenv"})
    assert type(resolved) is SentryCogConfig
    assert resolved == SentryCogConfig(send_pii=True, metric_prefix="old", status_guild_ids=(7,))


def test_resolve_validates_a_previous_import_of_the_class() -> None:
    foreign = _foreign_config_class()(flush_interval=-1.0)
    with pytest.raises(ConfigError, match="flush_interval"):
        resolve_config(foreign, environ={})


def test_resolve_previous_import_with_a_field_we_do_not_know() -> None:
    @dataclasses.dataclass(frozen=True)
    class SentryCogConfig:
        send_pii: bool = False
        old_option: int = 1

    with pytest.raises(ConfigError, match="old_option"):
        resolve_config(SentryCogConfig(), environ={})


# unknown variables -------------------------------------------------------------------------


def test_an_unknown_variable_names_the_closest_known_one() -> None:
    environ = {"TUX_SENTRY_TRACE_SAMPLE_RATE": "0.1", "TUX_SENTRY_SEND_PII": "false", "PATH": "x"}
    assert unknown_variables(environ) == [
        ("TUX_SENTRY_TRACE_SAMPLE_RATE", "TUX_SENTRY_TRACES_SAMPLE_RATE")
    ]


async def test_a_mistyped_variable_is_one_warning_at_load_and_never_fails_it(
    make_bot, monkeypatch, caplog
) -> None:
    monkeypatch.setenv("TUX_SENTRY_TRACE_SAMPLE_RATE", "0.1")
    with caplog.at_level(logging.WARNING, logger="tux_sentry_cog"):
        harness = await make_bot(load=False)
        harness.bot.sentry_cog_config = None
        await harness.bot.load_extension("tux_sentry_cog")
    warnings = [
        r.getMessage() for r in caplog.records if "TUX_SENTRY_TRACE_SAMPLE_RATE" in r.getMessage()
    ]
    assert warnings == [
        (
            "unknown environment variable TUX_SENTRY_TRACE_SAMPLE_RATE is ignored; "
            "did you mean TUX_SENTRY_TRACES_SAMPLE_RATE?"
        )
    ]
    assert all(r.levelno == logging.WARNING for r in caplog.records if r.getMessage() in warnings)
    cog = harness.bot.get_cog("Sentry")
    assert cog.config.traces_sample_rate == 1.0  # the default: the typo set nothing

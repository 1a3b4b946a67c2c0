"""``/sentry status`` and ``/sentry test``: the pure embed, and both forms through a real bot.

The embed tests feed :func:`build_status_embed` any data, up to absurd; the bot tests
run the hybrid group as a prefix command (dpytest) and as a slash command (the
interaction driver), as the owner and as anyone else.
"""

from __future__ import annotations

import itertools
import json
import logging
import math

import discord
import discord.ext.test as dpytest
import pytest
from conftest import InteractionDriver
from discord import app_commands
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tux_sentry_cog import SentryCogConfig
from tux_sentry_cog.core.status import AnomalySummary, SlowCommand, StatusSnapshot, TaskSummary
from tux_sentry_cog.status import (
    EMBED_FIELD_NAMES,
    LOCAL_MODE_TEXT,
    NOT_OWNER_TEXT,
    TEST_EVENT_MESSAGE,
    build_status_embed,
)
from tux_sentry_cog.testing import EPHEMERAL

SPEC_FIELDS = (
    "Sentry",
    "Commands",
    "Errors",
    "Top error groups",
    "Performance",
    "Resources",
    "Gateway",
    "Tasks",
)
DSN_KEY = "0123456789abcdef0123456789abcdef"


def assert_within_limits(embed: discord.Embed) -> None:
    """Every limit Discord puts on one embed."""
    assert len(embed.title or "") <= 256
    assert len(embed.description or "") <= 4096
    assert len(embed.fields) <= 25
    for field in embed.fields:
        assert field.name
        assert field.value  # Discord rejects empty field values
        assert len(field.name) <= 256
        assert len(field.value) <= 1024, (field.name, len(field.value))
    assert len(embed.footer.text or "") <= 2048
    assert len(embed) <= 6000


def fields(embed: discord.Embed) -> dict[str, str]:
    return {field.name: field.value for field in embed.fields}


def rich_snapshot(**changes) -> StatusSnapshot:
    values = {
        "mode": "owned",
        "dsn_host": "o42.ingest.sentry.io",
        "environment": "production",
        "release": "tux@1.2.3",
        "sample_rate": 0.25,
        "commands_executed": 1234,
        "commands_failed": 12,
        "error_rate_1m": 0.5,
        "error_rate_5m": 0.125,
        "errors_reported": 40,
        "errors_sent": 12,
        "last_event_id": "abcdef0123456789abcdef0123456789",
        "top_groups": (("RuntimeError | boom for user <ID> | boom", 9), ("KeyError | x", 3)),
        "slowest": (SlowCommand("slowpoke", 120.0, 450.0, 30),),
        "anomalies": (AnomalySummary("slowpoke", 3200.0, 120.0, 95.0),),
        "memory_mb": 123.4,
        "cpu_percent": 3.25,
        "event_loop_lag_ms": 1.5,
        "uptime_s": 93_784.0,
        "gateway_latency_ms": {0: 45.0, 1: 61.0},
        "gateway_events": ("shard 0 resumed",),
    }
    values.update(changes)
    return StatusSnapshot(**values)


# the pure embed -------------------------------------------------------------------------


def test_every_spec_field_by_name_and_in_order():
    embed = build_status_embed(rich_snapshot())
    assert tuple(f.name for f in embed.fields) == SPEC_FIELDS == EMBED_FIELD_NAMES
    assert_within_limits(embed)
    values = fields(embed)
    sentry = values["Sentry"]
    assert "active" in sentry
    assert "o42.ingest.sentry.io" in sentry
    assert "production" in sentry
    assert "tux@1.2.3" in sentry
    assert "25%" in sentry
    assert "1,234" in values["Commands"]
    assert "12" in values["Commands"]
    assert "0.50/min" in values["Commands"]
    assert "0.12/min" in values["Commands"] or "0.13/min" in values["Commands"]
    assert "40" in values["Errors"]
    assert "abcdef0123456789abcdef0123456789" in values["Errors"]
    assert "boom for user <ID>" in values["Top error groups"]
    assert "**9**" in values["Top error groups"]
    performance = values["Performance"]
    assert "slowpoke" in performance
    assert "p50 120.0 ms" in performance
    assert "p95 450.0 ms" in performance
    assert "3.20 s" in performance  # the anomaly
    resources = values["Resources"]
    assert "123.4 MiB" in resources
    assert "3.2%" in resources
    assert "1.5 ms" in resources
    assert "1d 2h 3m 4s" in resources
    gateway = values["Gateway"]
    assert "Shard 0: 45.0 ms" in gateway
    assert "Shard 1: 61.0 ms" in gateway
    assert "shard 0 resumed" in gateway


def test_dsn_key_never_appears():
    for dsn_host in (
        "o42.ingest.sentry.io",
        # Even if a whole DSN reached the snapshot, only its host is shown.
        f"https://{DSN_KEY}@o42.ingest.sentry.io/7",
        f"https://{DSN_KEY}:secret-part@o42.ingest.sentry.io/7",
    ):
        embed = build_status_embed(rich_snapshot(dsn_host=dsn_host))
        shown = json.dumps(embed.to_dict())
        assert DSN_KEY not in shown
        assert "secret-part" not in shown
        assert "o42.ingest.sentry.io" in fields(embed)["Sentry"]


def test_local_mode_says_so():
    embed = build_status_embed(StatusSnapshot(mode="local"))
    assert LOCAL_MODE_TEXT == "local mode: nothing is sent"
    assert LOCAL_MODE_TEXT in fields(embed)["Sentry"]
    assert tuple(f.name for f in embed.fields) == SPEC_FIELDS
    assert_within_limits(embed)


def test_transport_problem_is_visible():
    embed = build_status_embed(
        rich_snapshot(transport_problem="HTTP 429 from Sentry: rate limited")
    )
    sentry = fields(embed)["Sentry"]
    assert "Transport problem" in sentry
    assert "HTTP 429 from Sentry: rate limited" in sentry
    assert embed.colour == discord.Colour.orange()


def test_empty_snapshot_has_no_empty_field():
    embed = build_status_embed(StatusSnapshot(mode="external"))
    assert_within_limits(embed)
    assert "No error group sent yet." in fields(embed)["Top error groups"]
    assert "n/a" in fields(embed)["Resources"]


def test_non_finite_numbers_show_as_na():
    embed = build_status_embed(
        rich_snapshot(
            sample_rate=math.nan,
            error_rate_1m=math.inf,
            memory_mb=math.nan,
            event_loop_lag_ms=-math.inf,
            uptime_s=math.nan,
            gateway_latency_ms={None: math.inf},
            slowest=(SlowCommand("x", math.nan, math.inf, 0),),
        )
    )
    assert_within_limits(embed)
    assert "Latency: n/a" in fields(embed)["Gateway"]


def test_markdown_of_user_strings_is_escaped():
    embed = build_status_embed(
        rich_snapshot(
            top_groups=(("**bold** `code` _it_ ||spoiler||", 2),),
            slowest=(SlowCommand("~~strike~~\nsecond line", 1.0, 2.0, 3),),
        )
    )
    values = fields(embed)
    assert "\\*\\*bold\\*\\*" in values["Top error groups"]
    assert "\\`code\\`" in values["Top error groups"]
    assert "\\|\\|spoiler\\|\\|" in values["Top error groups"]
    assert "\\~\\~strike\\~\\~ second line" in values["Performance"]


def test_extreme_data_stays_within_every_limit():
    huge_name = "n" * 300
    snapshot = StatusSnapshot(
        mode="owned",
        dsn_host="h" * 5000,
        environment="e" * 5000,
        release="r" * 5000,
        sample_rate=1.0,
        commands_executed=10**15,
        commands_failed=10**14,
        error_rate_1m=1e12,
        error_rate_5m=1e12,
        errors_reported=10**15,
        errors_sent=10**15,
        last_event_id="f" * 5000,
        top_groups=tuple((f"{i}:" + "*_`" * 3000, 10_000 - i) for i in range(1000)),
        slowest=tuple(SlowCommand(f"{huge_name}{i}", 1e9, 1e10, 10**9) for i in range(500)),
        anomalies=tuple(AnomalySummary(huge_name, 1e9, 1e3, 1e9) for _ in range(500)),
        memory_mb=1e12,
        cpu_percent=1e6,
        event_loop_lag_ms=1e12,
        uptime_s=1e12,
        gateway_latency_ms={shard: 40.0 + shard for shard in range(200)},
        gateway_events=tuple("disconnect " + "x" * 500 for _ in range(1000)),
        transport_problem="p" * 5000,
        instrumentation_faults=10**9,
        tasks=tuple(TaskSummary("*_`" * 200 + str(i), 1e12, "x" * 500, 10**9) for i in range(300)),
    )
    embed = build_status_embed(snapshot)
    assert_within_limits(embed)
    assert "more loops" in fields(embed)["Tasks"]
    assert tuple(f.name for f in embed.fields) == SPEC_FIELDS
    values = fields(embed)
    groups = values["Top error groups"]
    # Only the five most frequent groups are listed; the rest are counted.
    assert [line.split(".", 1)[0] for line in groups.splitlines()[:5]] == ["1", "2", "3", "4", "5"]
    assert "6. " not in groups
    assert "995 more groups" in groups
    assert "\\*\\_\\`" in groups  # still escaped after cutting
    gateway = values["Gateway"]
    assert "Shard 0:" in gateway
    assert "Shard 199:" not in gateway
    assert "Slowest: shard 199" in gateway
    assert "more shards" in gateway
    assert "Transport problem" in values["Sentry"]


def test_groups_are_ordered_by_count_whatever_the_input_order():
    embed = build_status_embed(rich_snapshot(top_groups=(("rare", 1), ("common", 50))))
    groups = fields(embed)["Top error groups"].splitlines()
    assert groups[0].startswith("1. common")
    assert groups[1].startswith("2. rare")


_floats = st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True))
_text = st.text(max_size=2000)


_anything = st.fixed_dictionaries(
    {
        "mode": st.sampled_from(["local", "owned", "external", "weird"]),
        "text": _text,
        "number": _floats,
        "count": st.integers(min_value=0, max_value=10**18),
        "groups": st.lists(st.tuples(_text, st.integers(0, 10**9)), max_size=50),
        "names": st.lists(_text, max_size=30),
        "shards": st.dictionaries(
            st.one_of(st.none(), st.integers(0, 10**6)), st.floats(), max_size=300
        ),
    }
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_anything)
def test_any_snapshot_stays_within_limits(drawn):
    text, number, count, names = drawn["text"], drawn["number"], drawn["count"], drawn["names"]
    snapshot = StatusSnapshot(
        mode=drawn["mode"],
        dsn_host=text or None,
        environment=text,
        release=text,
        sample_rate=number,
        commands_executed=count,
        commands_failed=count,
        error_rate_1m=number if number is not None else 0.0,
        errors_reported=count,
        last_event_id=text or None,
        top_groups=tuple(drawn["groups"]),
        slowest=tuple(SlowCommand(n, number or 0.0, number or 0.0, count) for n in names),
        anomalies=tuple(AnomalySummary(n, number or 0.0, 1.0, number or 0.0) for n in names),
        memory_mb=number,
        cpu_percent=number,
        event_loop_lag_ms=number,
        uptime_s=number if number is not None else 0.0,
        gateway_latency_ms=drawn["shards"],
        gateway_events=tuple(names),
        transport_problem=text or None,
        instrumentation_faults=count,
    )
    embed = build_status_embed(snapshot)
    assert_within_limits(embed)
    assert tuple(f.name for f in embed.fields) == SPEC_FIELDS


# through a real bot ---------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _interactions_created_now(monkeypatch):
    """Give the driver's interactions ids of now.

    Its snowflakes start at 1.3e18, which is 2024-10-27: discord.py then finds every
    interaction older than 15 minutes, and a hybrid command's ``ctx.send`` falls back
    to a plain channel message instead of the interaction response.
    """
    now = discord.utils.time_snowflake(discord.utils.utcnow())
    monkeypatch.setitem(InteractionDriver._send.__globals__, "_ids", itertools.count(now))


def _non_owner() -> discord.Member:
    return dpytest.get_config().members[1]


async def _owned_bot(make_bot, config: SentryCogConfig | None = None, **fields_):
    harness = await make_bot(config, **fields_)
    # dpytest's application has an owner who is not a member: make the first one owner.
    harness.bot.owner_id = harness.member.id
    return harness


def _slash_embed_fields(result) -> list[str]:
    [embed] = result.first_response["embeds"]
    return [field["name"] for field in embed["fields"]]


async def test_owner_prefix_status_shows_every_field(make_bot):
    harness = await _owned_bot(make_bot)
    await harness.message("!sentry status")
    message = dpytest.get_message()
    [embed] = message.embeds
    assert tuple(f.name for f in embed.fields) == SPEC_FIELDS
    assert "active" in fields(embed)["Sentry"]
    assert DSN_KEY not in json.dumps(embed.to_dict())
    assert harness.bot_errors == []


async def test_owner_prefix_group_alone_shows_status(make_bot):
    harness = await _owned_bot(make_bot)
    await harness.message("!sentry")
    [embed] = dpytest.get_message().embeds
    assert tuple(f.name for f in embed.fields) == SPEC_FIELDS


async def test_owner_slash_status_shows_every_field(make_bot):
    harness = await _owned_bot(make_bot)
    result = await harness.slash("sentry status")
    assert tuple(_slash_embed_fields(result)) == SPEC_FIELDS
    # The owner's own view is ephemeral too: the channel does not read the bot's state.
    assert result.is_ephemeral()
    assert dpytest.verify().message().nothing()  # the interaction response, no message
    assert harness.tree_errors == []
    assert harness.bot_errors == []


async def test_status_counts_the_commands_run_before(make_bot):
    harness = await _owned_bot(make_bot)
    await harness.message("!ping")
    dpytest.get_message()
    await harness.message("!boom")
    result = await harness.slash("sentry status")
    [embed] = result.first_response["embeds"]
    commands_field = next(f for f in embed["fields"] if f["name"] == "Commands")
    assert "**Executed:** 2" in commands_field["value"]
    assert "**Failed:** 1" in commands_field["value"]
    groups = next(f for f in embed["fields"] if f["name"] == "Top error groups")
    assert "RuntimeError" in groups["value"]


async def test_non_owner_prefix_gets_a_short_refusal_only(make_bot, sentry_flush):
    harness = await _owned_bot(make_bot)
    await harness.message("!sentry status", member=_non_owner())
    message = dpytest.get_message()
    assert message.content == NOT_OWNER_TEXT
    assert message.embeds == []
    assert dpytest.verify().message().nothing()
    # One refusal in all: the bot's own on_command_error had nothing to answer.
    assert harness.bot_errors == []
    endpoint = sentry_flush()
    assert endpoint.events() == []  # a handled refusal is no error event
    statuses = [t["contexts"]["trace"]["status"] for t in endpoint.transactions()]
    assert statuses == ["permission_denied"]


async def test_non_owner_slash_gets_an_ephemeral_refusal_only(make_bot, sentry_flush):
    harness = await _owned_bot(make_bot)
    result = await harness.slash("sentry status", member=_non_owner())
    [response] = result.responses
    assert response["content"] == NOT_OWNER_TEXT
    assert not response.get("embeds")
    assert int(response["flags"]) & EPHEMERAL
    assert result.is_ephemeral()
    assert harness.tree_errors == []  # handled in the cog, never reached the tree
    assert sentry_flush().events() == []


async def test_non_owner_cannot_send_a_test_event(make_bot, sentry_flush):
    harness = await _owned_bot(make_bot)
    result = await harness.slash("sentry test", member=_non_owner())
    assert result.first_response["content"] == NOT_OWNER_TEXT
    assert result.is_ephemeral()
    await harness.message("!sentry test", member=_non_owner())
    assert dpytest.get_message().content == NOT_OWNER_TEXT
    assert sentry_flush().events() == []


async def test_no_owner_known_means_nobody_is_owner(make_bot):
    harness = await make_bot()  # dpytest's application owner is not a member
    result = await harness.slash("sentry status")
    assert result.first_response["content"] == NOT_OWNER_TEXT
    assert not result.first_response.get("embeds")


async def test_refusal_breadcrumb_rides_on_the_event_when_user_errors_are_sent(
    make_bot, sentry_flush
):
    harness = await _owned_bot(make_bot, capture_user_errors=True)
    intruder = _non_owner()
    await harness.slash("sentry status", member=intruder)
    [event] = sentry_flush().events()
    assert event["tags"]["error.category"] == "permission"
    crumbs = [b for b in event["breadcrumbs"]["values"] if b.get("category") == "security"]
    assert len(crumbs) == 1
    assert crumbs[0]["message"] == "non-owner tried /sentry status"
    assert crumbs[0]["data"]["user_id"] == str(intruder.id)


async def test_local_mode_status_and_test(make_bot):
    harness = await _owned_bot(make_bot, SentryCogConfig())
    result = await harness.slash("sentry status")
    [embed] = result.first_response["embeds"]
    sentry = next(f for f in embed["fields"] if f["name"] == "Sentry")
    assert LOCAL_MODE_TEXT in sentry["value"]
    result = await harness.slash("sentry test")
    assert LOCAL_MODE_TEXT in result.first_response["content"]
    assert result.is_ephemeral()


async def test_test_event_reaches_sentry_with_the_id_answered(make_bot, sentry_flush):
    harness = await _owned_bot(make_bot)
    result = await harness.slash("sentry test")
    content = result.responses[-1]["content"]
    assert result.is_ephemeral()
    assert content.startswith("Sentry accepted the test event")
    event_id = content.split("`")[1]
    assert len(event_id) == 32
    [event] = sentry_flush().events()
    assert event["event_id"] == event_id
    # A logentry: no bare top-level message, which some servers warn about.
    assert "message" not in event
    assert event["logentry"]["message"] == TEST_EVENT_MESSAGE
    assert event["level"] == "info"
    assert event["tags"]["command.name"] == "sentry test"


async def test_test_event_as_prefix_command(make_bot, sentry_flush):
    harness = await _owned_bot(make_bot)
    await harness.message("!sentry test")
    event_id = dpytest.get_message().content.split("`")[1]
    assert [e["event_id"] for e in sentry_flush().events()] == [event_id]


async def test_slash_group_is_global_by_default(make_bot):
    harness = await make_bot()
    assert harness.bot.tree.get_command("sentry") is not None


async def test_status_guild_ids_register_the_group_only_there(make_bot, sentry_endpoint):
    harness = await make_bot(load=False)
    bot = harness.bot
    bot.owner_id = harness.member.id
    guild = harness.member.guild
    synced: list[object] = []

    async def no_sync(*args, **kwargs):
        synced.append(args)
        return []

    bot.tree.sync = no_sync
    bot.sentry_cog_config = SentryCogConfig(
        dsn=sentry_endpoint.dsn, status_guild_ids=(guild.id, 42)
    )
    await bot.load_extension("tux_sentry_cog")
    assert bot.tree.get_command("sentry") is None
    assert bot.tree.get_command("sentry", guild=discord.Object(guild.id)) is not None
    assert bot.tree.get_command("sentry", guild=discord.Object(42)) is not None
    # Discord puts the guild a command is registered in into the interaction's data; the
    # driver's slash() sends global commands only, so this builds the data itself.
    data = {
        "id": "1",
        "name": "sentry",
        "type": 1,
        "guild_id": str(guild.id),
        "options": [{"name": "status", "type": 1, "options": []}],
    }
    result = await harness.interactions._send(
        2, data, member=harness.member, channel=None, timeout=10.0
    )
    assert tuple(_slash_embed_fields(result)) == SPEC_FIELDS
    # As a global command it does not exist any more.
    await harness.slash("sentry status")
    assert [type(e) for e in harness.tree_errors] == [app_commands.CommandNotFound]
    # Prefix commands are not per guild: the owner can use them anywhere.
    await harness.message("!sentry status")
    assert dpytest.get_message().embeds
    await bot.unload_extension("tux_sentry_cog")
    assert bot.tree.get_command("sentry", guild=discord.Object(guild.id)) is None
    assert bot.tree.get_command("sentry", guild=discord.Object(42)) is None
    assert synced == []  # syncing stays the bot owner's choice


async def test_reload_with_other_guilds_moves_the_group(make_bot, sentry_endpoint):
    harness = await make_bot(load=False)
    bot = harness.bot
    bot.sentry_cog_config = SentryCogConfig(dsn=sentry_endpoint.dsn, status_guild_ids=(7,))
    await bot.load_extension("tux_sentry_cog")
    await bot.unload_extension("tux_sentry_cog")
    bot.sentry_cog_config = SentryCogConfig(dsn=sentry_endpoint.dsn)
    await bot.load_extension("tux_sentry_cog")
    assert bot.tree.get_command("sentry", guild=discord.Object(7)) is None
    assert bot.tree.get_command("sentry") is not None


@pytest.mark.parametrize("form", ["prefix", "slash"])
async def test_both_forms_ask_bot_is_owner_once(make_bot, form, monkeypatch):
    harness = await _owned_bot(make_bot)
    seen: list[int] = []
    original = harness.bot.is_owner

    async def is_owner(user):
        seen.append(user.id)
        return await original(user)

    monkeypatch.setattr(harness.bot, "is_owner", is_owner)
    if form == "prefix":
        await harness.message("!sentry status", member=_non_owner())
        assert dpytest.get_message().content == NOT_OWNER_TEXT
    else:
        result = await harness.slash("sentry status", member=_non_owner())
        assert result.first_response["content"] == NOT_OWNER_TEXT
    # The cog's single policy (cog_check) asked about the invoker, once, in either form.
    assert seen == [_non_owner().id]


async def test_a_failing_status_is_reported_once_and_logged(make_bot, sentry_flush, caplog):
    harness = await _owned_bot(make_bot)
    cog = harness.bot.get_cog("Sentry")

    def broken_snapshot():
        raise RuntimeError("the snapshot broke")

    cog.status_snapshot = broken_snapshot
    with caplog.at_level(logging.ERROR):
        result = await harness.slash("sentry status")
    assert result.requests == []
    [event] = sentry_flush().events()
    assert event["exception"]["values"][-1]["type"] == "RuntimeError"
    # cog_command_error silences discord.py's default log for the cog: it logs instead.
    assert any(
        r.getMessage() == "Ignoring exception in command sentry status" for r in caplog.records
    )

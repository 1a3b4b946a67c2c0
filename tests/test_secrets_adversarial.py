"""An adversary's inputs, every channel: nothing secret leaves, and no user word reshapes
an event.

The inputs are not built to match the implementation: quoted, rest and converted
arguments, words equal to the cog's own tag values, ops, statuses and module parts,
unicode and escapes; the failures put them in exception messages, notes, chained
exceptions, custom ``context`` attributes, dict keys, frame locals, log records (logging
and loguru, as events, breadcrumbs and Sentry Logs) and real aiohttp spans. Each secret
is a fresh random marker, so a byte of it anywhere in what the SDK sent is a leak.
"""

from __future__ import annotations

import asyncio
import logging
import string
from typing import Any

import aiohttp
import discord
import discord.ext.test as dpytest
import pytest
import sentry_sdk
from aiohttp import web
from conftest import BOT_TOKEN, assert_sentry_accepts
from discord import app_commands
from discord.ext import commands
from discord.webhook import async_ as webhook_async
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from loguru import logger as loguru_logger

from tux_sentry_cog import SentryCogConfig, track_database_operation
from tux_sentry_cog.core.metrics import STRUCTURAL

_log = logging.getLogger("adversary.bot")

# Words a user could type that equal what the cog itself writes: tag values, ops,
# statuses, categories, module and package parts, its command and cog names.
_OWN_WORDS = [
    "error", "internal_error", "ok", "internal", "discord", "ext", "commands", "core",
    "prefix", "command", "none", "dm", "yes", "no", "warning", "info", "tux", "tux_sentry_cog",
    "Adversary", "Sample", "fixed", "echo", "RuntimeError", "ValueError", "database",
    "lookup", "failure", "test", "sentry", "task", "event", "slash", "invoke", "cog",
    "Filtered", "[Filtered]", "discord.command", "http.client", "adversary",
]
_UNICODE = st.text(
    st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp", "Zs")), min_size=1, max_size=8
)
_WORDS = st.one_of(st.sampled_from(_OWN_WORDS), _UNICODE, st.sampled_from(['\\"', "'", "\\n"]))
_SECRETS = st.text(string.ascii_lowercase, min_size=12, max_size=12).map(lambda s: "q" + s)

FIXED_MESSAGE = "fixed failure: database error in lookup core ext command"
WEBHOOK_ID = 123456789012345678
WEBHOOK_TOKEN = "wHk-" + "t0kenPart" * 7
INTERACTION_TOKEN = "aW50ZXJhY3Rpb246" + "SecretInteractionToken" * 4


class ContextError(Exception):
    """A bot's own exception with a ``context`` mapping (a common convention)."""

    def __init__(self, message: str, context: dict[str, Any]) -> None:
        super().__init__(message)
        self.context = context


class Adversary(commands.Cog):
    """Commands that put what the user typed everywhere a careless bot could."""

    def __init__(self, base_url: str = "") -> None:
        self.base_url = base_url

    @commands.command()
    async def echo(self, ctx: commands.Context[Any], *, text: str) -> None:
        raise ValueError(f"cannot echo {text}")

    @commands.command()
    async def pair(self, ctx: commands.Context[Any], first: str, second: str) -> None:
        # Quoted arguments arrive without their quotes; each is echoed on its own.
        raise LookupError(f"no pair {first} with {second}")

    @commands.command()
    async def convert(self, ctx: commands.Context[Any], number: int, *, text: str) -> None:
        raise ArithmeticError(f"{number * 2} from {text.lower()}")

    @commands.command()
    async def chained(self, ctx: commands.Context[Any], *, text: str) -> None:
        try:
            {"known": 1}[text]
        except KeyError as inner:
            outer = RuntimeError("lookup of the user's key failed")
            outer.add_note(f"the key was {text}")
            raise outer from inner

    @commands.command()
    async def context(self, ctx: commands.Context[Any], *, text: str) -> None:
        raise ContextError(
            "context failure",
            {text: "as a key", "value": text, "Authorization": "qauthheadervalue"},
        )

    @commands.command()
    async def frames(self, ctx: commands.Context[Any], *, text: str) -> None:
        by_word = {word: index for index, word in enumerate(text.split())}  # noqa: F841
        whole = text  # noqa: F841 - a frame local the SDK records
        raise RuntimeError(FIXED_MESSAGE)

    @commands.command()
    async def chatter(self, ctx: commands.Context[Any], *, text: str) -> None:
        _log.warning("user asked for %s", text)
        _log.info(f"formatted into the template: {text}")  # what careless bots do
        loguru_logger.warning("loguru saw {}", text)
        raise RuntimeError(FIXED_MESSAGE)

    @commands.command()
    async def whois(self, ctx: commands.Context[Any], member: discord.Member) -> None:
        await ctx.send(str(member.id))

    @commands.command()
    async def divide(self, ctx: commands.Context[Any], *, text: str) -> None:
        await ctx.send(str(len(text) / (len(text) - len(text))))  # CPython's own message

    @commands.command()
    async def fixed(self, ctx: commands.Context[Any], *, text: str = "") -> None:
        raise RuntimeError(FIXED_MESSAGE)

    @commands.command()
    async def hook(self, ctx: commands.Context[Any], *, text: str = "") -> None:
        # A real call through discord.py's webhook adapter, and an interaction callback,
        # each recorded by the SDK's aiohttp integration as an http.client span.
        async with aiohttp.ClientSession() as session:
            webhook = discord.Webhook.partial(WEBHOOK_ID, WEBHOOK_TOKEN, session=session)
            await webhook.send("hello")
            url = f"{self.base_url}/interactions/{WEBHOOK_ID}/{INTERACTION_TOKEN}/callback"
            async with session.post(url, json={"type": 4}) as response:
                await response.read()
        await ctx.send("hooked")

    @commands.command()
    async def spans(self, ctx: commands.Context[Any], *, text: str) -> None:
        sql = f"SELECT * FROM notes WHERE body = '{text}'"  # noqa: S608 - a careless query
        async with track_database_operation("select", "notes", query=sql):
            pass
        with sentry_sdk.start_span(op="cache.get", name=f"cache lookup {text}") as span:
            span.set_data("key", text)
        sentry_sdk.metrics.count(
            "bot.lookups", 1, attributes={"who": "owner@example.org", "token": ctx.bot.http.token}
        )
        sentry_sdk.crons.capture_checkin(
            monitor_slug=f"lookup-{ctx.bot.http.token}", status="ok", duration=1.0
        )
        await ctx.send("looked up")

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        if message.content.startswith("listen "):
            content = message.content  # noqa: F841 - a frame local of the listener
            raise RuntimeError(f"listener choked on {message.content}")


async def _echo_choices(
    interaction: discord.Interaction[Any], current: str
) -> list[app_commands.Choice[str]]:
    raise LookupError(f"no choices for {current}")


@app_commands.command(name="say")
@app_commands.autocomplete(text=_echo_choices)
async def say(interaction: discord.Interaction[Any], text: str, times: int = 1) -> None:
    reply_with = interaction.token  # noqa: F841 - a frame local holding the token
    raise ValueError(f"cannot say {text} {times} times")


@app_commands.context_menu(name="Quote")
async def quote(interaction: discord.Interaction[Any], message: discord.Message) -> None:
    raise RuntimeError(f"cannot quote: {message.content}")


class EchoView(discord.ui.View):
    def __init__(self) -> None:
        super().__init__(timeout=None)

    @discord.ui.select(custom_id="adversary:pick", options=[discord.SelectOption(label="a")])
    async def pick(self, interaction: discord.Interaction[Any], select: Any) -> None:
        raise RuntimeError(f"picked {select.values}")


class EchoModal(discord.ui.Modal, title="Echo"):
    text: discord.ui.TextInput[Any] = discord.ui.TextInput(label="Text", custom_id="text")

    def __init__(self) -> None:
        super().__init__(custom_id="adversary:modal", timeout=None)

    async def on_submit(self, interaction: discord.Interaction[Any]) -> None:
        raise ValueError(f"cannot store {self.text.value}")


async def _bot(make_bot: Any, **config: Any) -> Any:
    harness = await make_bot(**config)
    await harness.bot.add_cog(Adversary())
    return harness


def _errors(endpoint: Any) -> list[dict[str, Any]]:
    """The error events: a long test process can also raise the cog's resource message."""
    return [e for e in endpoint.events() if "exception" in e]


def _sent(endpoint: Any) -> str:
    return endpoint.raw_bytes().decode("utf-8", errors="replace")


def _strings(node: Any) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for k, v in node.items() for s in (*_strings(k), *_strings(v))]
    if isinstance(node, list):
        return [s for v in node for s in _strings(v)]
    return []


def _assert_nothing_secret(endpoint: Any, *secrets: str) -> None:
    """No byte of a secret in what was sent, nor in any decoded string (JSON escapes a
    backslash or a quote, so a raw-byte search alone would miss those), nor as repr."""
    sent = _sent(endpoint)
    assert BOT_TOKEN not in sent
    decoded = [s for envelope in endpoint.envelopes for _, p in envelope.items
               for s in _strings(p)]
    for secret in secrets:
        assert secret not in sent, secret
        for form in {secret, repr(secret)[1:-1]}:
            assert not any(form in text for text in decoded), form
    for item in [*endpoint.events(), *endpoint.transactions()]:
        assert_sentry_accepts(item)


@st.composite
def _arguments(draw: Any) -> tuple[str, str]:
    """A secret marker and an argument text holding it, quoted or not, among other words."""
    secret = draw(_SECRETS)
    words = draw(st.lists(_WORDS, max_size=5))
    words.insert(draw(st.integers(0, len(words))), secret)
    if draw(st.booleans()):
        return secret, f'"{" ".join(words)}"'
    return secret, " ".join(words)


_SETTINGS = settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@_SETTINGS
@given(example=_arguments(), command=st.sampled_from(["echo", "convert 21", "chained",
                                                       "context", "frames"]))
async def test_no_argument_byte_leaves_from_any_failure(make_bot, sentry_flush, example,
                                                        command) -> None:
    secret, text = example
    harness = await _bot(make_bot)
    harness.endpoint.clear()
    await harness.message(f"!{command} {text}")
    endpoint = sentry_flush()
    assert len(_errors(endpoint)) == 1
    _assert_nothing_secret(endpoint, secret)
    await harness.bot.unload_extension("tux_sentry_cog")


@_SETTINGS
@given(first=_SECRETS, second=_SECRETS, noise=st.lists(_WORDS, max_size=3))
async def test_quoted_arguments_never_leave(make_bot, sentry_flush, first, second, noise) -> None:
    harness = await _bot(make_bot)
    harness.endpoint.clear()
    rest = " ".join(noise)
    await harness.message(f'!pair "{first} {rest}" "{rest} {second}"')
    endpoint = sentry_flush()
    # A noise word with a quote of its own can end a quoted argument early: discord.py
    # then refuses the quoting (a user's error, no event). Nothing secret leaves either way.
    refused = any(isinstance(e, commands.ArgumentParsingError) for e in harness.bot_errors)
    assert len(_errors(endpoint)) == (0 if refused else 1)
    _assert_nothing_secret(endpoint, first, second)
    await harness.bot.unload_extension("tux_sentry_cog")


@pytest.mark.parametrize(
    "secret",
    ["qback\\slash", "qit's'quoted", 'q"double"quoted', "qtab\tand\u00e9"],
    ids=["backslash", "quote", "double-quote", "escape"],
)
async def test_values_with_escapes_never_leave(make_bot, sentry_flush, secret) -> None:
    """Frame variables and CPython's messages are reprs: the value comes out escaped."""
    harness = await _bot(make_bot)
    for command in ("frames", "chained"):
        harness.endpoint.clear()
        await harness.message(f"!{command} {secret}")
        endpoint = sentry_flush()
        assert len(_errors(endpoint)) == 1
        _assert_nothing_secret(endpoint, secret)


async def test_a_quoted_value_of_short_words_never_leaves(make_bot, sentry_flush) -> None:
    """Words under three characters are no needles alone; the quoted value is, whole."""
    harness = await _bot(make_bot)
    harness.endpoint.clear()
    await harness.message('!pair "ab cd" "ef gh"')
    endpoint = sentry_flush()
    (event,) = _errors(endpoint)
    assert event["exception"]["values"][-1]["value"] == "no pair [Filtered] with [Filtered]"
    _assert_nothing_secret(endpoint, "ab cd", "ef gh")

    # A converter that fails echoes the argument as discord.py parsed it; it never
    # reaches the command's arguments, so only the parser's reading of the text has it.
    harness = await _bot(make_bot, capture_user_errors=True)
    harness.endpoint.clear()
    await harness.message('!whois "ab cd"')
    endpoint = sentry_flush()
    (event,) = _errors(endpoint)
    assert event["exception"]["values"][-1]["type"] == "MemberNotFound"
    _assert_nothing_secret(endpoint, "ab cd")


def _shape(event: dict[str, Any]) -> dict[str, Any]:
    """What user input must never change: the cog's tags, fingerprint, frames."""
    values = event["exception"]["values"]
    return {
        "fingerprint": event["fingerprint"],
        # correlation_id is new per run; error.related depends on the bot's history (the
        # run before), not on the words.
        "tags": {
            k: v for k, v in event["tags"].items() if k not in ("correlation_id", "error.related")
        },
        "frames": [
            [(f.get("module"), f.get("function"), f.get("filename"), f.get("abs_path"),
              f.get("lineno")) for f in value["stacktrace"]["frames"]]
            for value in values
        ],
        "type": [value["type"] for value in values],
        "message": event["contexts"]["error"]["message"],
    }


def _transaction_shape(transaction: dict[str, Any]) -> tuple[Any, ...]:
    trace = transaction["contexts"]["trace"]
    return transaction["transaction"], trace["op"], trace["status"]


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(words=st.lists(_WORDS, min_size=1, max_size=6), quoted=st.booleans())
async def test_user_words_never_reshape_a_failing_run(make_bot, sentry_flush, words,
                                                      quoted) -> None:
    """One failing run, arbitrary user words: the same fingerprint, tags, transaction name
    and status, and intact frames, as with a neutral word."""
    harness = await _bot(make_bot)
    shapes = []
    for text in ("zzz", " ".join(words)):
        harness.endpoint.clear()
        await harness.message(f'!frames "{text}"' if quoted else f"!frames {text}")
        endpoint = sentry_flush()
        (event,) = _errors(endpoint)
        (transaction,) = endpoint.transactions()
        shapes.append((_shape(event), _transaction_shape(transaction)))
        for item in (event, transaction):
            assert_sentry_accepts(item)
    first, second = shapes
    for key in first[0]:
        assert first[0][key] == second[0][key], key
    assert first[1] == second[1]
    assert shapes[0][0]["message"] == FIXED_MESSAGE  # the program's own text, whole
    await harness.bot.unload_extension("tux_sentry_cog")


async def test_a_c_raised_message_keeps_its_words_and_loses_only_quoted_values(
    make_bot, sentry_flush
) -> None:
    """``{"known": 1}[text]``: CPython's message quotes the key; a user word equal to a
    word of the program's own message leaves it and the fingerprint alone."""
    harness = await _bot(make_bot)
    fingerprints = []
    for text in ("qsecretkeyvalue", "lookup failed"):
        harness.endpoint.clear()
        await harness.message(f"!chained {text}")
        (event,) = _errors(sentry_flush())
        values = event["exception"]["values"]
        assert values[0]["type"] == "KeyError"
        assert values[0]["value"] == "'[Filtered]'"
        assert values[1]["value"].startswith("lookup of the user's key failed\n")
        fingerprints.append(event["fingerprint"])
        assert "qsecretkeyvalue" not in _sent(harness.endpoint)
    assert fingerprints[0] == fingerprints[1]


async def test_a_c_raised_message_is_not_split_by_its_own_words(make_bot, sentry_flush) -> None:
    """``x / 0``: a user typing "division by zero" changes neither the message nor the
    group of CPython's ``division by zero``."""
    harness = await _bot(make_bot)
    seen = []
    for text in ("zzz", "division by zero", "by"):
        harness.endpoint.clear()
        await harness.message(f"!divide {text}")
        (event,) = _errors(sentry_flush())
        seen.append((event["fingerprint"], event["exception"]["values"][-1]["value"]))
    assert seen[0] == seen[1] == seen[2]
    assert seen[0][1] == "division by zero"


async def test_dict_keys_and_custom_context_keys_are_scrubbed(make_bot, sentry_flush) -> None:
    harness = await _bot(make_bot)
    harness.endpoint.clear()
    await harness.message("!context qkeysecretone someone@example.org")
    (event,) = _errors(sentry_flush())
    custom = event["contexts"]["error"]["custom_context"]
    assert all("qkeysecretone" not in key and "@" not in key for key in custom)
    _assert_nothing_secret(
        harness.endpoint, "qkeysecretone", "someone@example.org", "qauthheadervalue"
    )

    harness.endpoint.clear()
    await harness.message("!frames qkeysecrettwo mail@example.org")
    (event,) = _errors(sentry_flush())
    frames = event["exception"]["values"][0]["stacktrace"]["frames"]
    frame_vars = [f.get("vars", {}) for f in frames]
    assert any("by_word" in v for v in frame_vars)  # the local is there, its keys scrubbed
    _assert_nothing_secret(harness.endpoint, "qkeysecrettwo", "mail@example.org")


async def test_listener_errors_lose_the_message_content(make_bot, sentry_flush) -> None:
    harness = await _bot(make_bot)
    harness.endpoint.clear()
    await harness.message("listen qlistenersecret to this")
    await dpytest.run_all_events()
    events = [e for e in sentry_flush().events() if e["tags"].get("command.type") == "event"]
    assert len(events) == 1
    assert events[0]["tags"]["command.name"] == "on_message"
    _assert_nothing_secret(harness.endpoint, "qlistenersecret")


@pytest.mark.parametrize("capture_user_errors", [False, True], ids=["default", "user-errors"])
async def test_unknown_command_word_never_leaves_even_as_a_related_group(
    make_bot, sentry_flush, capture_user_errors
) -> None:
    """The mistyped word's group is listed in later events' related errors."""
    harness = await _bot(make_bot, capture_user_errors=capture_user_errors)
    harness.endpoint.clear()
    await harness.message("!qtypedwordsecret")
    await harness.message("!fixed")
    await harness.message("!qtypedwordsecret again")
    await harness.message("!fixed")
    endpoint = sentry_flush()
    assert len(_errors(endpoint)) >= (4 if capture_user_errors else 2)
    _assert_nothing_secret(endpoint, "qtypedwordsecret")


@pytest.fixture
async def loopback_discord():
    """A loopback HTTP server standing in for Discord's REST API; discord.py's webhook
    adapter is pointed at it, so the SDK's aiohttp integration records real spans."""
    seen: list[str] = []

    async def answer(request: web.Request) -> web.Response:
        seen.append(request.path)
        return web.Response(status=204)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    base = f"http://127.0.0.1:{port}/api/v10"
    original = webhook_async.Route.BASE
    webhook_async.Route.BASE = base
    try:
        yield base, seen
    finally:
        webhook_async.Route.BASE = original
        await runner.cleanup()


async def test_interaction_and_webhook_tokens_leave_no_span_url(
    make_bot, sentry_flush, loopback_discord
) -> None:
    base, seen = loopback_discord
    harness = await make_bot()
    await harness.bot.add_cog(Adversary(base))
    harness.endpoint.clear()
    await harness.message("!hook")
    assert any(WEBHOOK_TOKEN in path for path in seen)  # the calls really went out
    assert any(INTERACTION_TOKEN in path for path in seen)
    endpoint = sentry_flush()
    # The loopback server is an aiohttp app: the SDK traces it too (op http.server).
    (transaction,) = [
        t for t in endpoint.transactions() if t["contexts"]["trace"]["op"] == "discord.command"
    ]
    urls = [
        span["description"] for span in transaction["spans"] if span["op"] == "http.client"
    ]
    assert f"POST {base}/webhooks/{WEBHOOK_ID}/[Filtered]" in urls
    assert f"POST {base}/interactions/{WEBHOOK_ID}/[Filtered]/callback" in urls
    _assert_nothing_secret(endpoint, WEBHOOK_TOKEN, INTERACTION_TOKEN)


async def test_logs_events_breadcrumbs_and_sentry_logs_are_scrubbed(
    sentry_endpoint, make_bot, sentry_flush
) -> None:
    """The owner's own client with Sentry Logs on: a log line holding the bot token, the
    user's text in logging and loguru records; the owner's before_send_log sees it all
    scrubbed already."""
    seen_by_owner: list[str] = []

    def owners_before_send_log(log: Any, hint: Any) -> Any:
        seen_by_owner.append(str(log))
        return log

    sentry_sdk.init(
        dsn=sentry_endpoint.dsn, enable_logs=True, before_send_log=owners_before_send_log
    )
    harness = await make_bot(SentryCogConfig())
    await harness.bot.add_cog(Adversary())
    sentry_endpoint.clear()
    _log.error("token leaked: %s", BOT_TOKEN)
    await harness.message("!chatter qlogsecretword with someone@example.net")
    await asyncio.sleep(0)
    endpoint = sentry_flush()
    sent = _sent(endpoint)
    assert endpoint.items("log"), "no Sentry Logs were sent"
    assert "user asked for" in sent  # the log lines went out, scrubbed
    for secret in (BOT_TOKEN, "qlogsecretword", "someone@example.net"):
        assert secret not in sent, secret
        assert not any(secret in text for text in seen_by_owner), secret
    assert seen_by_owner
    for event in endpoint.events():
        assert_sentry_accepts(event)


async def test_interaction_values_never_leave(make_bot, sentry_flush) -> None:
    """Slash options, the focused autocomplete value, a message context menu's target,
    a modal's input and a select's values: each echoed by the bot into its error."""
    harness = await _bot(make_bot)
    harness.bot.tree.add_command(say)
    harness.bot.tree.add_command(quote)
    harness.bot.add_view(EchoView())
    harness.bot._connection.store_view(EchoModal())
    harness.endpoint.clear()
    member = harness.member
    await harness.slash("say", {"text": "qslashsecret and more", "times": 31337})
    await harness.interactions.autocomplete("say", {"text": "qautocompletesecret"}, "text",
                                            member=member)
    await harness.interactions.message_context_menu("Quote", "qtargetsecret said this",
                                                    member=member)
    await harness.interactions.component("adversary:pick", member=member, component_type=3,
                                         values=["qselectsecret"])
    await harness.interactions.modal_submit("adversary:modal", {"text": "qmodalsecret text"},
                                            member=member)
    endpoint = sentry_flush()
    types = sorted(e["tags"]["command.type"] for e in _errors(endpoint))
    assert types == ["autocomplete", "component", "context_menu", "modal", "slash"]
    _assert_nothing_secret(endpoint, "qslashsecret", "31337", "qautocompletesecret",
                           "qtargetsecret", "qselectsecret", "qmodalsecret")
    # The interaction token is a known secret of its run, whatever field it lands in.
    assert "interaction-token-" not in _sent(endpoint)


async def test_the_cogs_own_words_survive_a_user_typing_them(make_bot, sentry_flush) -> None:
    """The words of the cog's own breadcrumbs, tags and transaction, typed as arguments."""
    harness = await _bot(make_bot)
    harness.endpoint.clear()
    await harness.message("!frames Started command frames Finished internal_error prefix")
    endpoint = sentry_flush()
    (event,) = _errors(endpoint)
    (transaction,) = endpoint.transactions()
    crumbs = [c["message"] for c in event["breadcrumbs"]["values"] if c["category"] == "command"]
    assert crumbs == ["Started command: frames", "Finished command: frames"]
    assert event["tags"]["command.name"] == "frames"
    assert event["tags"]["command.type"] == "prefix"
    assert event["tags"]["error.severity"] == "error"
    assert transaction["transaction"] == "frames"
    assert transaction["contexts"]["trace"]["status"] == "internal_error"
    assert "[Filtered]" not in str(event["fingerprint"])


async def test_spans_metrics_and_check_ins_are_scrubbed(make_bot, sentry_flush) -> None:
    """The bot's own span names and data, a query holding the argument, its own metric
    attributes and a check-in: none carries the argument, an address or the token, and the
    cog's own span keeps its name."""
    harness = await _bot(make_bot)
    harness.endpoint.clear()
    await harness.message("!spans qspansecret select notes")
    endpoint = sentry_flush()
    (transaction,) = endpoint.transactions()
    by_op = {span["op"]: span for span in transaction["spans"]}
    assert by_op["db.query"]["description"] == "select notes"  # the cog's own: intact
    # The query is free text: the user's words go, even where the code has them too.
    query = by_op["db.query"]["data"]["db.query"]
    assert query.startswith("SELECT * FROM ")
    assert query.endswith(" WHERE body = '[Filtered]'")
    assert by_op["cache.get"]["description"] == "cache lookup [Filtered]"
    metrics = [m for batch in endpoint.items("trace_metric") for m in batch["items"]]
    names = {m["name"] for m in metrics}
    assert "bot.lookups" in names, names
    assert "tux.commands.duration" in names, names
    # The cog's marker for its own metrics (names and statuses only) never goes out.
    assert not any(STRUCTURAL in m.get("attributes", {}) for m in metrics)
    assert endpoint.items("check_in"), "the bot's check-in was not sent"
    _assert_nothing_secret(endpoint, "qspansecret", "owner@example.org")


async def test_the_owners_hooks_see_scrubbed_data(sentry_endpoint, make_bot, sentry_flush) -> None:
    seen: list[str] = []

    def keep(event: Any, hint: Any) -> Any:
        seen.append(str(event))
        return event

    sentry_sdk.init(
        dsn=sentry_endpoint.dsn,
        traces_sample_rate=1.0,
        before_send=keep,
        before_send_transaction=keep,
    )
    harness = await make_bot(SentryCogConfig())
    await harness.bot.add_cog(Adversary())
    await harness.message("!echo qownerhooksecret")
    sentry_flush()
    assert len(seen) == 2  # the error and the transaction
    assert not any("qownerhooksecret" in text or BOT_TOKEN in text for text in seen)
    assert any("cannot echo [Filtered]" in text for text in seen)


async def test_sentry_test_keeps_its_message(make_bot, sentry_flush) -> None:
    """``!sentry test``: the subcommand's word is no user value to blank."""
    harness = await _bot(make_bot)
    harness.bot.owner_id = harness.member.id
    harness.endpoint.clear()
    await harness.message("!sentry test")
    messages = [e["logentry"]["message"] for e in sentry_flush().events()]
    assert "tux_sentry_cog test event" in messages
    # Nothing else of the cog's (a long test process may add its resource message).
    assert set(messages) <= {"tux_sentry_cog test event", "High resource usage"}

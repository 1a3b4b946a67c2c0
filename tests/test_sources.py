"""Every error source beyond commands, through a real bot: one event each, its
``command.type``, and the bot's own handler still called."""

from __future__ import annotations

import asyncio
import logging

import discord
import discord.ext.test as dpytest
from conftest import FailingModal, FailingView, assert_sentry_accepts
from discord.ext import tasks
from discord.ui import Modal


def _one_event(endpoint, command_type):
    events = [e for e in endpoint.events() if e["tags"].get("command.type") == command_type]
    assert len(events) == 1, [e["tags"] for e in endpoint.events()]
    assert_sentry_accepts(events[0])
    return events[0]


async def test_component_callback(make_bot, sentry_flush):
    harness = await make_bot()
    view = FailingView(harness.view_errors)
    harness.bot.add_view(view)
    await harness.interactions.component("sample:explode", member=harness.member)
    result = await harness.interactions.component("sample:fine", member=harness.member)
    assert result.first_response["content"] == "fine"
    endpoint = sentry_flush()
    event = _one_event(endpoint, "component")
    assert event["tags"]["command.name"] == "FailingView.explode"
    assert event["exception"]["values"][-1]["type"] == "OSError"
    assert event["user"]["id"] == str(harness.member.id)
    assert len(harness.view_errors) == 1  # the view's own on_error ran
    ops = {t["transaction"]: t["contexts"]["trace"] for t in endpoint.transactions()}
    assert ops["FailingView.explode"]["op"] == "discord.interaction"
    assert ops["FailingView.explode"]["status"] == "internal_error"
    assert ops["FailingView.fine"]["status"] == "ok"


async def test_modal_submission(make_bot, sentry_flush, caplog):
    harness = await make_bot()
    harness.bot._connection.store_view(FailingModal())
    with caplog.at_level(logging.ERROR, logger="discord.ui.modal"):
        await harness.interactions.modal_submit(
            "sample:modal", {"text": "my secret feedback"}, member=harness.member
        )
    endpoint = sentry_flush()
    event = _one_event(endpoint, "modal")
    assert event["tags"]["command.name"] == "FailingModal"
    assert event["exception"]["values"][-1]["type"] == "ValueError"
    # The default Modal.on_error still logged it; the log line did not become an event.
    assert any("Ignoring exception in modal" in r.getMessage() for r in caplog.records)
    assert len(endpoint.events()) == 1
    assert b"my secret feedback" not in endpoint.raw_bytes()


async def test_event_listener(make_bot, sentry_flush):
    harness = await make_bot()
    guild = harness.member.guild
    harness.bot.dispatch("explode", guild)
    await dpytest.run_all_events()
    event = _one_event(sentry_flush(), "event")
    assert event["tags"]["command.name"] == "on_explode"
    assert event["tags"]["guild.id"] == str(guild.id)
    assert event["exception"]["values"][-1]["type"] == "RuntimeError"
    assert harness.event_errors == ["on_explode"]


async def test_listener_error_after_bot_replaces_on_error(make_bot, sentry_flush):
    harness = await make_bot()
    late: list[str] = []

    @harness.bot.event
    async def on_error(event_method, *args, **kwargs):
        late.append(event_method)

    harness.bot.dispatch("explode", harness.member.guild)
    await dpytest.run_all_events()
    _one_event(sentry_flush(), "event")
    assert late == ["on_explode"]


async def test_task_loop_started_after_load(make_bot, sentry_flush):
    harness = await make_bot()
    background = harness.bot.get_cog("Background")
    task = background.failing_loop.start()
    await asyncio.gather(task, return_exceptions=True)
    event = _one_event(sentry_flush(), "task")
    assert event["tags"]["command.name"] == "Background.failing_loop"
    assert event["tags"]["cog"] == "Background"
    assert event["exception"]["values"][-1]["type"] == "ValueError"
    assert len(background.loop_errors) == 1  # the loop's own error handler ran first


async def test_autocomplete(make_bot, sentry_flush, caplog):
    harness = await make_bot()
    with caplog.at_level(logging.ERROR, logger="discord.app_commands.tree"):
        await harness.interactions.autocomplete(
            "pick", {"fruit": "pe"}, "fruit", member=harness.member
        )
    event = _one_event(sentry_flush(), "autocomplete")
    assert event["tags"]["command.name"] == "pick"
    assert event["exception"]["values"][-1]["type"] == "LookupError"
    assert any("Ignoring exception in autocomplete" in r.getMessage() for r in caplog.records)


async def test_context_menu(make_bot, sentry_flush):
    harness = await make_bot()
    target = dpytest.get_config().members[1]
    await harness.interactions.user_context_menu("Inspect", target, member=harness.member)
    endpoint = sentry_flush()
    event = _one_event(endpoint, "context_menu")
    assert event["tags"]["command.name"] == "Inspect"
    assert event["exception"]["values"][-1]["type"] == "PermissionError"
    assert len(harness.tree_errors) == 1
    [transaction] = [t for t in endpoint.transactions() if t["transaction"] == "Inspect"]
    assert transaction["contexts"]["trace"]["op"] == "discord.app_command"


async def test_unload_leaves_the_class_wrappers_inert(make_bot, sentry_flush):
    harness = await make_bot()
    owner = next(k for k in discord.ui.View.__mro__ if "_scheduled_task" in k.__dict__)
    patched = (
        owner.__dict__["_scheduled_task"],
        Modal.__dict__["_scheduled_task"],
        tasks.Loop.__dict__["_loop"],
    )
    view = FailingView(harness.view_errors)
    harness.bot.add_view(view)
    await harness.bot.unload_extension("tux_sentry_cog")
    # Never unpatched (another library may have wrapped ours since): passed through.
    assert (
        owner.__dict__["_scheduled_task"],
        Modal.__dict__["_scheduled_task"],
        tasks.Loop.__dict__["_loop"],
    ) == patched
    await harness.interactions.component("sample:explode", member=harness.member)
    result = await harness.interactions.component("sample:fine", member=harness.member)
    assert result.first_response["content"] == "fine"
    assert len(harness.view_errors) == 1  # the view's own on_error, as without the cog
    assert sentry_flush().events() == []

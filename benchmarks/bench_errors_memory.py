"""The error path against capture_exception alone, and memory over a million commands.

Run: ``python benchmarks/bench_errors_memory.py [--commands N] [--users U] [--guilds G]``

(a) CPU of a failing prefix command with the cog (sample rate 0, so no transaction),
    minus the same failing command on a bare bot, against ``sentry_sdk.capture_exception``
    of the same exception alone: a bot whose ``on_command_error`` calls it with the
    command's error (the same traceback, frames and locals as the cog's event), minus
    the bare bot. Target: the cog's added cost at most 1.3 times capture_exception's (errors
    are rare; correctness of the event comes first). Also printed: a
    one-frame exception raised and captured outside any bot, the lightest possible event.
(b) RSS over N commands (default 1,000,000) from U distinct users (100,000) in G guilds
    (1,000), in local mode and with the SDK active: growth after warm-up under 20 MB,
    and flat (the last quarter grows less than the first).

Both in one process; the SDK sends to a transport that drops envelopes.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import random
import statistics
import time
from typing import Any

import discord
import discord.ext.test as dpytest
import psutil
import sentry_sdk
from discord.ext import commands
from sentry_sdk.transport import Transport

from tux_sentry_cog import SentryCogConfig
from tux_sentry_cog.testing import reset_sentry_sdk

#: The error path may cost up to this many times ``capture_exception`` of the same failure.
TARGET_ERROR_RATIO = 1.3


class NullTransport(Transport):
    def capture_envelope(self, envelope: Any) -> None:
        return None


class Bench(commands.Cog):
    @commands.command()
    async def fail(self, ctx: commands.Context[Any]) -> None:
        raise ValueError("the benchmark's failure")

    @commands.command()
    async def work(self, ctx: commands.Context[Any]) -> None:
        return None


async def _bot(
    load: bool, host: commands.Bot | None = None, *, capture: bool = False, **config: Any
) -> commands.Bot:
    bot = commands.Bot(command_prefix="!", intents=discord.Intents.all())
    await bot._async_setup_hook()
    await bot.add_cog(Bench())
    if host is not None:
        bot._connection.user = host._connection.user

    @bot.event
    async def on_command_error(_ctx: Any, error: Any) -> None:
        # The bot handles its errors: nothing logged per failure. The hand-written
        # baseline sends each one with the SDK's own call, as owners do today.
        if capture:
            sentry_sdk.capture_exception(getattr(error, "original", error))

    if load:
        bot.sentry_cog_config = SentryCogConfig(**config)  # type: ignore[attr-defined]
        await bot.load_extension("tux_sentry_cog")
    return bot


def _init_sdk(rate: float) -> None:
    reset_sentry_sdk()
    sentry_sdk.init(
        dsn="http://" + "a" * 32 + "@127.0.0.1:9/1",
        transport=NullTransport,
        traces_sample_rate=rate,
    )


def _raised() -> ValueError:
    try:
        raise ValueError("the benchmark's failure")  # noqa: TRY301 - a real traceback
    except ValueError as exc:
        return exc


async def failing_setup() -> tuple[commands.Bot, Any]:
    """The SDK at sample rate 0, dpytest's host bot and a ``!fail`` message to process."""
    _init_sdk(0.0)
    host = await _bot(load=False)
    dpytest.configure(host)
    config = dpytest.get_config()
    message = dpytest.backend.make_message("!fail", config.members[0], config.channels[0])
    await dpytest.run_all_events()
    return host, message


async def error_path(rounds: int, n: int) -> int:
    host, message = await failing_setup()
    bots = {
        "bare": await _bot(load=False, host=host),
        "capture": await _bot(load=False, host=host, capture=True),
        "cog": await _bot(load=True, host=host),
    }
    samples: dict[str, list[float]] = {kind: [] for kind in (*bots, "one_frame")}
    for round_number in range(rounds):
        order = list(samples)
        random.Random(round_number).shuffle(order)
        for kind in order:
            start = time.thread_time()
            for _ in range(n):
                if kind == "one_frame":
                    # A fresh exception each time: the SDK drops a repeated one (Dedupe).
                    sentry_sdk.capture_exception(_raised())
                else:
                    await bots[kind].process_commands(message)
                    # on_command_error runs in a task of its own: let it run, timed.
                    await asyncio.sleep(0)
            samples[kind].append((time.thread_time() - start) / n * 1e6)
            await asyncio.sleep(0)
    median = {kind: statistics.median(values) for kind, values in samples.items()}
    added = median["cog"] - median["bare"]
    baseline = median["capture"] - median["bare"]
    ratio = added / baseline
    print("(a) failing command, CPU per command (microseconds, median of rounds)")
    print(f"    bare bot {median['bare']:.1f}; on_command_error -> capture_exception "
          f"{median['capture']:.1f} (adds {baseline:.1f}); with the cog {median['cog']:.1f} "
          f"(adds {added:.1f})")
    print(f"    capture_exception of a one-frame exception, outside a bot: "
          f"{median['one_frame']:.1f} (the cog adds {added / median['one_frame']:.2f}x that)")
    verdict = "PASS" if ratio <= TARGET_ERROR_RATIO else "FAIL"
    print(
        f"    cog's error path / capture_exception = {ratio:.2f}  "
        f"target <= {TARGET_ERROR_RATIO:g} {verdict}"
    )
    await bots["cog"].unload_extension("tux_sentry_cog")
    reset_sentry_sdk()
    return 0 if ratio <= TARGET_ERROR_RATIO else 1


async def memory(commands_total: int, users: int, guilds: int, active: bool) -> int:
    if active:
        _init_sdk(0.1)
    else:
        reset_sentry_sdk()
    host = await _bot(load=False)
    dpytest.configure(host, guilds=1)
    state = dpytest.backend.get_state()
    base = dpytest.get_config()
    guild_channels = [base.channels[0]]
    for index in range(guilds - 1):
        guild = dpytest.backend.make_guild(f"G{index}")
        guild_channels.append(dpytest.backend.make_text_channel("general", guild))
    authors = [
        discord.User(state=state, data={"id": 10**17 + i, "username": f"u{i}",
                                        "discriminator": "0", "avatar": None})
        for i in range(users)
    ]
    messages = [
        dpytest.backend.make_message("!work", base.members[0], guild_channels[i])
        for i in range(guilds)
    ]
    await dpytest.run_all_events()
    bot = await _bot(load=True, host=host, **({} if active else {"dsn": None}))
    process = psutil.Process()
    checkpoints: list[tuple[int, float]] = []
    warmup = commands_total // 10
    for index in range(commands_total):
        message = messages[index % guilds]
        message.author = authors[index % users]
        if index % 7 == 0:
            message.content = "!fail"
        await bot.process_commands(message)
        message.content = "!work"
        if index % 50 == 0:
            # Let the events each command dispatched (on_command, ...) run, as a live
            # bot's loop would; piled up unrun, they would be the only growth measured.
            await asyncio.sleep(0)
        if index == warmup or (index + 1) % (commands_total // 10) == 0:
            gc.collect()
            checkpoints.append((index + 1, process.memory_info().rss / 1_048_576))
    await bot.unload_extension("tux_sentry_cog")
    reset_sentry_sdk()
    start_rss = checkpoints[0][1]
    growth = checkpoints[-1][1] - start_rss
    quarter = max(1, len(checkpoints) // 4)
    first = checkpoints[quarter][1] - checkpoints[0][1]
    last = checkpoints[-1][1] - checkpoints[-1 - quarter][1]
    mode = "SDK active, rate 0.1" if active else "local mode"
    print(f"(b) RSS over {commands_total:,} commands, {users:,} users, {guilds:,} guilds ({mode})")
    for count, rss in checkpoints:
        print(f"    {count:>10,} commands  {rss:8.1f} MiB")
    flat = last <= max(first, 1.0)
    ok = growth < 20 and flat
    print(f"    growth after warm-up {growth:.1f} MiB (target < 20), first quarter {first:.1f}, "
          f"last quarter {last:.1f}: {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


async def main(args: argparse.Namespace) -> int:
    failures = await error_path(args.rounds, args.errors)
    for active in (False, True):
        failures += await memory(args.commands, args.users, args.guilds, active)
    return failures


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--commands", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--guilds", type=int, default=1_000)
    parser.add_argument("--errors", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=15)
    raise SystemExit(asyncio.run(main(parser.parse_args())))

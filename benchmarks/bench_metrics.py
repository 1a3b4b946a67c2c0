"""Benchmark of the metrics buffer against the SDK's own call, in one process.

Run: ``.venv/bin/python benchmarks/bench_metrics.py``.

(a) median ns per ``MetricsBuffer.count`` (5 attributes), ``.distribution`` and a real
    ``sentry_sdk.metrics.count`` (SDK initialised against a loopback SentryEndpoint);
(b) tracemalloc size of the buffer across 1,000,000 recordings, drained every 100,000;
(c) the longest event-loop stall while ``emit`` sends a full buffer to the real SDK.

The machine is shared and noisy: every figure is a median of repeated runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import random
import statistics
import threading
import time
import tracemalloc
from array import array
from typing import TYPE_CHECKING

import sentry_sdk
import sentry_sdk.metrics
from sentry_sdk.transport import Transport
from sentry_sdk.utils import json_dumps
from standin_sentry import StandinSentry

from tux_sentry_cog.adapter.telemetry import HANDOFF_TIMEOUT
from tux_sentry_cog.core.metrics import (
    DEFAULT_MAX_KEYS,
    DEFAULT_MAX_VALUES_PER_KEY,
    HANDOFF_ITEMS,
    MetricsBuffer,
    emit,
    hand_off,
)
from tux_sentry_cog.testing import SentryEndpoint, reset_sentry_sdk

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from sentry_sdk.envelope import Envelope

TARGET_RECORD_NS = 2_000
TARGET_STALL_MS = 5.0
#: Memory counts as flat when the last samples differ by less than this.
FLAT_TOLERANCE_BYTES = 256 * 1024
#: Nothing listens on port 9 (discard) here: the SDK's transport fails fast, in-process
#: work is the SDK's own serialisation only, no loopback server competing for the GIL.
CLOSED_DSN = "http://0123456789abcdef0123456789abcdef@127.0.0.1:9/1"

ATTRS = {
    "command_name": "ping",
    "command_type": "prefix",
    "cog_name": "Sample",
    "status": "success",
    "guild_id": "123456789012345678",
}


def median_ns_per_call(fn, calls: int = 200, repeats: int = 301) -> tuple[float, float]:
    """(median, min) over ``repeats`` runs of the mean ns per call within one run.

    Short runs (~0.2 ms) so that most of them are not preempted on a shared machine;
    the collector is off while timing, as in ``timeit``. Includes the lambda's own call
    (~50 ns here).
    """
    per_run = []
    gc.collect()
    gc.disable()
    try:
        for _ in range(repeats):
            start = time.perf_counter_ns()
            for _ in range(calls):
                fn()
            per_run.append((time.perf_counter_ns() - start) / calls)
    finally:
        gc.enable()
    return statistics.median(per_run), min(per_run)


def bench_record(endpoint: SentryEndpoint) -> dict[str, tuple[float, float]]:
    buf = MetricsBuffer()
    # Cap above the ~60,000 timed calls: every value is kept, the common case.
    uncapped = MetricsBuffer(max_values_per_key=1_000_000)
    attrs = ATTRS
    # Each call builds its attribute dict, as the cog does at every command.
    results = {
        "MetricsBuffer.count (5 attrs)": median_ns_per_call(
            lambda: buf.count(
                "commands.executed",
                attributes={
                    "command_name": "ping",
                    "command_type": "prefix",
                    "cog_name": "Sample",
                    "status": "success",
                    "guild_id": "123456789012345678",
                },
            )
        ),
        "MetricsBuffer.count (5 attrs, prebuilt dict)": median_ns_per_call(
            lambda: buf.count("commands.executed", attributes=attrs)
        ),
        "MetricsBuffer.distribution (2 attrs, under cap)": median_ns_per_call(
            lambda: uncapped.distribution(
                "commands.duration",
                12.5,
                "millisecond",
                {"command_name": "ping", "command_type": "prefix"},
            )
        ),
        "MetricsBuffer.gauge (no attrs)": median_ns_per_call(
            lambda: buf.gauge("system.memory_usage", 120.0, "mebibyte")
        ),
    }
    rng = random.Random(1)
    # The reservoir path: the series is past its cap, every value draws a random slot.
    for _ in range(DEFAULT_MAX_VALUES_PER_KEY):
        buf.distribution("hot", rng.random(), "millisecond", {"command_name": "ping"})
    results["MetricsBuffer.distribution (past cap)"] = median_ns_per_call(
        lambda: buf.distribution("hot", 12.5, "millisecond", {"command_name": "ping"})
    )
    buf.drain()

    sentry_sdk.init(dsn=endpoint.dsn)
    try:
        sdk_runs = []
        for _ in range(41):
            # 200 calls per run, flushed outside the timed region: the batcher never
            # reaches the 1,000 items that wake its flusher, so this is the call alone
            # (the flusher's lock and GIL use make it several times slower in bulk).
            gc.disable()  # as for the buffer's figures
            start = time.perf_counter_ns()
            for _ in range(200):
                sentry_sdk.metrics.count(
                    "tux.commands.executed",
                    1,
                    attributes={
                        "command_name": "ping",
                        "command_type": "prefix",
                        "cog_name": "Sample",
                        "status": "success",
                        "guild_id": "123456789012345678",
                    },
                )
            sdk_runs.append((time.perf_counter_ns() - start) / 200)
            gc.enable()
            sentry_sdk.flush(timeout=10)
        results["sentry_sdk.metrics.count (5 attrs)"] = (
            statistics.median(sdk_runs),
            min(sdk_runs),
        )
    finally:
        reset_sentry_sdk()
    return results


def bench_memory() -> list[tuple[int, int, int, int]]:
    """Per 100,000 recordings: (recordings, keys, bytes before the drain, bytes after)."""
    commands = [f"command_{i:03d}" for i in range(200)]
    statuses = ("success", "error", "cancelled")
    types = ("prefix", "slash", "hybrid", "context_menu")
    tiers = ("fast", "normal", "slow", "very_slow")
    rng = random.Random(7)
    buf = MetricsBuffer()
    # Filled in place: a list growing inside the traced region would show up as growth.
    sizes = array("q", [0] * 30)
    gc.collect()
    tracemalloc.start()
    try:
        baseline = tracemalloc.get_traced_memory()[0]
        for done in range(1, 1_000_001):
            command = commands[rng.randrange(200)]
            kind = done % 4
            if kind == 0:
                buf.count(
                    "commands.executed",
                    attributes={
                        "command_name": command,
                        "command_type": types[rng.randrange(4)],
                        "cog_name": "Sample",
                        "status": statuses[rng.randrange(3)],
                    },
                )
            elif kind == 1:
                buf.distribution(
                    "commands.duration",
                    rng.expovariate(1 / 50),
                    "millisecond",
                    {"command_name": command, "command_type": types[rng.randrange(4)]},
                )
            elif kind == 2:
                buf.distribution(
                    "command.performance",
                    rng.expovariate(1 / 50),
                    "millisecond",
                    {"command_name": command, "performance_tier": tiers[rng.randrange(4)]},
                )
            else:
                buf.gauge("system.memory_usage", rng.random() * 500, "mebibyte")
            if done % 100_000 == 0:
                keys = len(buf)
                gc.collect()
                full = tracemalloc.get_traced_memory()[0] - baseline
                batch = buf.drain()  # the flush loop would emit it; here it is let go
                del batch
                gc.collect()
                empty = tracemalloc.get_traced_memory()[0] - baseline
                row = done // 100_000 - 1
                sizes[3 * row : 3 * row + 3] = array("q", [keys, full, empty])
    finally:
        tracemalloc.stop()
    return [
        ((row + 1) * 100_000, sizes[3 * row], sizes[3 * row + 1], sizes[3 * row + 2])
        for row in range(10)
    ]


def full_buffer() -> MetricsBuffer:
    """10,000 series: 4,000 counts, 1,000 gauges, 5,000 distributions at their cap."""
    buf = MetricsBuffer()
    rng = random.Random(3)
    for i in range(4_000):
        buf.count("commands.executed", attributes={"command_name": f"c{i}", "status": "ok"})
    for i in range(1_000):
        buf.gauge("gateway.latency", rng.random() * 100, "millisecond", {"shard_id": str(i)})
    for i in range(5_000):
        attrs = {"command_name": f"c{i}", "command_type": "slash"}
        for _ in range(DEFAULT_MAX_VALUES_PER_KEY):
            buf.distribution("commands.duration", rng.random() * 100, "millisecond", attrs)
    if len(buf) != DEFAULT_MAX_KEYS:
        raise RuntimeError(f"expected a full buffer, got {len(buf)} keys")
    return buf


#: Gaps that overlapped a full (generation 2) garbage collection, per loop_gaps run.
GC_GAPS: list[float] = []
#: (gap, the part of it the loop's thread spent runnable but waiting for a CPU) for
#: each gap of the last loop_gaps run (Linux schedstat): the machine's share.
CPU_WAITS: list[tuple[float, float]] = []


def _runqueue_clock() -> Callable[[], float]:
    """Seconds the calling thread has waited for a CPU so far (0 where unknown).

    /proc/thread-self/schedstat holds "run time, run-queue wait, time slices" in ns.
    Waiting for the GIL is sleeping, not this: what this counts is the machine's
    other work (or this process's other threads) holding both cores.
    """
    try:
        fd = os.open("/proc/thread-self/schedstat", os.O_RDONLY)
    except OSError:
        return lambda: 0.0

    def waited() -> float:
        return int(os.pread(fd, 100, 0).split()[1]) / 1e9

    return waited


async def loop_gaps(work: Callable[[], Awaitable[object]]) -> tuple[list[float], object, float]:
    """Run ``work`` while a ticker (asyncio.sleep(0.001) loop) records its wake-up gaps.

    Full garbage collections are timed too (gc.callbacks): a gap that overlaps one is
    also put in GC_GAPS, so the table can say which stalls were the collector's.
    """
    gaps: list[float] = []
    spans: list[tuple[float, float, float]] = []  # (start, end, gap)
    collections: list[tuple[float, float]] = []
    started: list[float] = [0.0]
    done = False

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if info["generation"] == 2:
            if phase == "start":
                started[0] = time.perf_counter()
            else:
                collections.append((started[0], time.perf_counter()))

    waited = _runqueue_clock()
    cpu_waits: list[float] = []

    async def ticker() -> None:
        last = time.perf_counter()
        last_wait = waited()
        while not done:
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            wait = waited()
            spans.append((last, now, now - last))
            cpu_waits.append(wait - last_wait)
            last, last_wait = now, wait

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0.01)
    spans.clear()
    cpu_waits.clear()
    gc.callbacks.append(on_gc)
    try:
        start = time.perf_counter()
        result = await work()
        elapsed = time.perf_counter() - start
        done = True
        await task
    finally:
        gc.callbacks.remove(on_gc)
    GC_GAPS.clear()
    CPU_WAITS.clear()
    for (begin, end, gap), cpu_wait in zip(spans, cpu_waits, strict=False):
        gaps.append(gap)
        CPU_WAITS.append((gap, cpu_wait))
        if any(c_start < end and c_end > begin for c_start, c_end in collections):
            GC_GAPS.append(gap)
    gaps.sort()
    return gaps, result, elapsed


def gap_row(label: str, gaps: list[float], seconds: float, **extra: object) -> dict[str, object]:
    outside_gc = sorted(gaps)
    for gap in GC_GAPS:
        outside_gc.remove(gap)
    longest = max(CPU_WAITS, default=(0.0, 0.0))
    own = max((gap - wait for gap, wait in CPU_WAITS), default=0.0)
    return {
        "label": label,
        "cpu_wait_ms": longest[1] * 1000,
        "own_max_ms": own * 1000,
        "p999_ms": gaps[int(len(gaps) * 0.999)] * 1000,
        "gc_max_ms": max(GC_GAPS, default=0.0) * 1000,
        "max_outside_gc_ms": (outside_gc[-1] if outside_gc else 0.0) * 1000,
        "max_ms": gaps[-1] * 1000,
        "p99_ms": gaps[int(len(gaps) * 0.99)] * 1000,
        "median_ms": statistics.median(gaps) * 1000,
        "seconds": seconds,
        **extra,
    }


class NullSink:
    """Takes every call and does nothing: what emit costs without the SDK."""

    def count(self, name, value, unit=None, attributes=None) -> None:
        pass

    def gauge(self, name, value, unit=None, attributes=None) -> None:
        pass

    def distribution(self, name, value, unit=None, attributes=None) -> None:
        pass


class _KeepTransport(Transport):
    """Keeps the envelopes instead of sending them."""

    def __init__(self, options: dict[str, object] | None = None) -> None:
        super().__init__(options)
        self.envelopes: list[Envelope] = []

    def capture_envelope(self, envelope: Envelope) -> None:
        self.envelopes.append(envelope)


def _envelope_payload(items: int) -> object:
    """The payload of the SDK's envelope for ``items`` metrics, as its transport encodes it."""
    transport = _KeepTransport()
    sentry_sdk.init(dsn=CLOSED_DSN, transport=transport)
    try:
        for i in range(items):
            sentry_sdk.metrics.distribution(
                "tux.commands.duration", 1.5, "millisecond", {"command_name": f"c{i}"}
            )
        sentry_sdk.get_client().flush(0)  # the metrics batcher builds its envelope
    finally:
        reset_sentry_sdk()
    payload = transport.envelopes[-1].items[0].payload.json
    if payload is None:
        raise RuntimeError("the SDK sent no metrics envelope")
    return payload


#: (median, max) ms of one envelope encode run alone, filled by bench_stall.
ENCODE_MS: list[float] = []


def _encode_alone(payload: object, times: int = 1_000) -> list[float]:
    """Median and longest of ``times`` encodes, one thread, a 3 ms sleep before each.

    The same C call, the same input, nothing else running: what the longest differs
    from the median by is the machine (on a shared VM, work just after a sleep is
    sometimes several times slower), and every stall figure above carries it too.
    """
    took: list[float] = []
    for _ in range(times):
        time.sleep(0.003)
        started = time.perf_counter()
        json_dumps(payload)
        took.append((time.perf_counter() - started) * 1000)
    return [statistics.median(took), max(took)]


def bench_stall() -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []

    # Baseline 1: the machine itself, nothing to do.
    gaps, _, seconds = asyncio.run(loop_gaps(lambda: asyncio.sleep(1.0)))
    rows.append(gap_row("idle loop, 1 s (machine noise)", gaps, seconds))

    # Baseline 2: the SDK's own flush of 1,000 metrics, nothing of ours running.
    sentry_sdk.init(dsn=CLOSED_DSN)
    try:
        for i in range(999):
            sentry_sdk.metrics.distribution(
                "tux.commands.duration", 1.5, "millisecond", {"command_name": f"c{i}"}
            )

        async def thousandth() -> None:
            sentry_sdk.metrics.count("tux.x", 1)  # the 1,000th item wakes the flusher
            await asyncio.sleep(1.0)

        gaps, _, seconds = asyncio.run(loop_gaps(thousandth))
        rows.append(gap_row("SDK flushes 1,000 items alone", gaps, seconds))
    finally:
        reset_sentry_sdk()

    # Baseline 3: the step no pacing of ours can split. With hand-offs every
    # HANDOFF_ITEMS, the longest thing another thread does holding the GIL is the SDK's
    # transport encoding one envelope of that many metrics (one json.dumps). Here a
    # thread does only that, every 3 ms for 5 s, and nothing of ours runs.
    payload = _envelope_payload(HANDOFF_ITEMS)
    stop = threading.Event()

    def encode_forever() -> None:
        while not stop.wait(0.003):
            json_dumps(payload)

    encoder = threading.Thread(target=encode_forever)
    encoder.start()
    try:
        gaps, _, seconds = asyncio.run(loop_gaps(lambda: asyncio.sleep(5.0)))
    finally:
        stop.set()
        encoder.join()
    rows.append(gap_row(f"a thread encoding {HANDOFF_ITEMS}-metric envelopes", gaps, seconds))
    ENCODE_MS[:] = _encode_alone(payload)

    batch = full_buffer().drain()
    gaps, sent, seconds = asyncio.run(
        loop_gaps(lambda batch=batch: emit(batch, "tux", NullSink()))
    )
    rows.append(
        gap_row(
            "emit -> no-op sink (ours alone)", gaps, seconds, items=len(batch), sent=sent
        )
    )

    async def handoff() -> bool:
        # What the cog's flush loop passes (Telemetry._handoff).
        return await hand_off(sentry_sdk.get_client(), HANDOFF_TIMEOUT)

    runs = [
        ("emit as the cog does -> SDK, closed port", CLOSED_DSN,
         {"handoff": handoff, "pause_gc": True}),
        ("  the same, collector not paused", CLOSED_DSN, {"handoff": handoff}),
        ("  no hand-offs either (SDK batches 1,000)", CLOSED_DSN, {}),
        ("emit as the cog does -> Sentry stand-in", "standin",
         {"handoff": handoff, "pause_gc": True}),
    ]
    for label, dsn, options in runs:
        batch = full_buffer().drain()
        items = len(batch)
        # Only the last run has a server: the stand-in is a process of its own, and an
        # idle one still takes a little of the machine.
        with StandinSentry() if dsn == "standin" else contextlib.nullcontext() as standin:
            sentry_sdk.init(dsn=standin.dsn if standin is not None else dsn)
            try:
                gaps, sent, seconds = asyncio.run(
                    loop_gaps(lambda batch=batch, options=options: emit(batch, "tux", **options))
                )
                sentry_sdk.flush(timeout=60)
            finally:
                reset_sentry_sdk()
            received: object = "-" if standin is None else standin.received()["metric_items"]
        rows.append(gap_row(label, gaps, seconds, items=items, sent=sent, received=received))
    return rows


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def main() -> int:
    with SentryEndpoint() as endpoint:
        record = bench_record(endpoint)
        memory = bench_memory()
    stalls = bench_stall()

    sdk_ns = record["sentry_sdk.metrics.count (5 attrs)"][0]
    print("\n(a) cost per recording, ns per call (median and min of 301 runs of 200 calls)")
    print(f"    {'call':48} {'median':>8} {'min':>8} {'SDK/this':>9}")
    for name, (median, low) in record.items():
        print(f"    {name:48} {median:8.0f} {low:8.0f} {sdk_ns / median:8.1f}x")
    worst_record = max(
        median for name, (median, _) in record.items() if name.startswith("MetricsBuffer")
    )

    print("\n(b) tracemalloc bytes, 1,000,000 recordings (200 commands x 3 statuses x 4 types)")
    print(f"    {'recordings':>10} {'keys':>6} {'full buffer':>12} {'after drain':>12}")
    for done, keys, full, empty in memory:
        print(f"    {done:10,d} {keys:6d} {full:12,d} {empty:12,d}")
    fulls = [full for _, _, full, _ in memory]
    spread = max(fulls) - min(fulls)
    print(f"    spread of the full-buffer size over the 10 intervals: {spread:,d} bytes")

    print(
        f"\n(c) event-loop gaps (asyncio.sleep(0.001) ticker), full buffer = {DEFAULT_MAX_KEYS:,d}"
    )
    print("    keys: 4,000 counts, 1,000 gauges, 5,000 distributions at their cap of 100")
    print(
        f"    {'run':42} {'items':>8} {'sent':>8} {'received':>9} {'secs':>6} "
        f"{'max ms':>7} {'p99.9':>6} {'p99':>6} {'p50':>6} {'in a full GC':>12} "
        f"{'other max':>9} {'CPU wait':>8} {'own max':>8}"
    )
    for row in stalls:
        items, sent, received = (row.get(k, "-") for k in ("items", "sent", "received"))
        print(
            f"    {row['label']:42} {fmt(items):>8} {fmt(sent):>8} {fmt(received):>9} "
            f"{row['seconds']:6.1f} {row['max_ms']:7.1f} {row['p999_ms']:6.1f} "
            f"{row['p99_ms']:6.1f} {row['median_ms']:6.2f} {row['gc_max_ms']:12.1f} "
            f"{row['max_outside_gc_ms']:9.1f} {row['cpu_wait_ms']:8.1f} {row['own_max_ms']:8.1f}"
        )
    print("    (in a full GC: the longest gap that overlapped a generation-2 collection;"
          " other max: the longest that did not;\n     CPU wait: of the longest gap, the"
          " time the loop's thread was runnable but had no CPU;\n     own max: the longest"
          " gap less that wait)")
    print(f"    one {HANDOFF_ITEMS}-metric envelope encoded alone, 1,000 times after a 3 ms"
          f" sleep: median {ENCODE_MS[0]:.2f} ms, longest {ENCODE_MS[1]:.2f} ms")
    max_stall = float(stalls[4]["max_ms"])  # type: ignore[arg-type]

    checks = [
        (
            f"record < {TARGET_RECORD_NS / 1000:.0f} µs median (worst kind: {worst_record:.0f} ns)",
            worst_record < TARGET_RECORD_NS,
        ),
        (
            f"memory flat (full-buffer spread {spread:,d} B < {FLAT_TOLERANCE_BYTES:,d} B)",
            spread < FLAT_TOLERANCE_BYTES,
        ),
        (
            f"emit stall < {TARGET_STALL_MS:.0f} ms (closed port: {max_stall:.1f} ms max)",
            max_stall < TARGET_STALL_MS,
        ),
    ]
    print()
    for label, ok in checks:
        print(f"    {verdict(ok)}  {label}")
    return 0 if all(ok for _, ok in checks) else 1


def fmt(value: object) -> str:
    return f"{value:,d}" if isinstance(value, int) else str(value)


if __name__ == "__main__":
    raise SystemExit(main())

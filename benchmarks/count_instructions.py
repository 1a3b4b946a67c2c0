"""Instructions per prefix command, counted by valgrind: bench_commands.py without the noise.

Run: ``python benchmarks/count_instructions.py [--rate R] [--errors]`` (needs
``valgrind``; about four minutes). ``--errors`` counts the error path instead: a failing
command on a bare bot, on a bot whose ``on_command_error`` calls ``capture_exception``,
and with the cog (bench_errors_memory.py's bots, 120 failures minus 20).

CPU time on a shared machine moves by several percent from run to run, which is the
size of the margins the targets ask for. Instructions executed do not move: each bot
(bare, hand-written inline instrumentation, the cog) runs 50 and then 250 commands in
a process of its own under callgrind, and the difference over the 200 extra commands
is the cost of a command, start-up excluded. Same configurations as bench_commands.py
(the SDK initialised first, a transport that drops envelopes). Instructions are not
time (cache misses, branch prediction), so this is a cross-check of the CPU figures,
not a replacement.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

FEW, MANY = 50, 250


async def _run(kind: str, rate: float, n: int) -> None:
    """The measured process: set up one bot, run ``n`` commands, exit."""
    if kind in ERROR_KINDS:
        await _run_failures(kind, n)
        return
    from bench_commands import make_bot, set_up  # noqa: PLC0415 - the child's path

    host, message = await set_up(rate)
    bot = await make_bot(kind, host)
    for _ in range(n):
        await bot.process_commands(message)


#: The error path's bots (bench_errors_memory.py): bare, capture_exception in
#: on_command_error, and the cog; the command fails every time, sample rate 0.
ERROR_KINDS = {"bare-fail": {}, "capture-fail": {"capture": True}, "cog-fail": {"load": True}}


async def _run_failures(kind: str, n: int) -> None:
    from bench_errors_memory import _bot, failing_setup  # noqa: PLC0415 - the child's path

    host, message = await failing_setup()
    options = ERROR_KINDS[kind]
    bot = await _bot(load=bool(options.get("load")), host=host,
                     capture=bool(options.get("capture")))
    for _ in range(n):
        await bot.process_commands(message)
        await asyncio.sleep(0)  # on_command_error runs in a task of its own


def _count(valgrind: str, kind: str, rate: float, n: int) -> int:
    # A fixed hash seed: with a random one, set and dict orders (and so the paths taken)
    # differ between runs by tens of thousands of instructions.
    result = subprocess.run(  # noqa: S603 - our own script, fixed arguments
        [
            valgrind, "--tool=callgrind", "--callgrind-out-file=/dev/null",
            sys.executable, __file__, "--child", kind, str(rate), str(n),
        ],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONHASHSEED": "0"},
    )
    found = re.search(r"Collected : (\d+)", result.stderr)
    if found is None:
        raise RuntimeError(result.stderr[-2000:])
    return int(found.group(1))


def main_errors(valgrind: str) -> int:
    """The error path: what the cog adds per failure against capture_exception alone."""
    few, many = 20, 120
    per_failure = {
        kind: (_count(valgrind, kind, 0.0, many) - _count(valgrind, kind, 0.0, few))
        / (many - few)
        for kind in ERROR_KINDS
    }
    capture = per_failure["capture-fail"] - per_failure["bare-fail"]
    cog = per_failure["cog-fail"] - per_failure["bare-fail"]
    print("Instructions per failing prefix command (thousands)")
    print(f"  bare {per_failure['bare-fail'] / 1e3:.0f}, "
          f"capture_exception {per_failure['capture-fail'] / 1e3:.0f}, "
          f"cog {per_failure['cog-fail'] / 1e3:.0f}")
    print(f"  added: capture_exception {capture / 1e3:.0f}, cog {cog / 1e3:.0f}; "
          f"cog / capture_exception = {cog / capture:.2f}")
    return 0


def main(rate: float, errors: bool = False) -> int:
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        print("valgrind is not installed: nothing to count")
        return 2
    if errors:
        return main_errors(valgrind)
    per_command = {
        kind: (_count(valgrind, kind, rate, MANY) - _count(valgrind, kind, rate, FEW))
        / (MANY - FEW)
        for kind in ("bare", "inline", "cog")
    }
    inline = per_command["inline"] - per_command["bare"]
    cog = per_command["cog"] - per_command["bare"]
    print(f"Instructions per prefix command at sample rate {rate} (thousands)")
    print(f"  bare {per_command['bare'] / 1e3:.0f}, inline {per_command['inline'] / 1e3:.0f}, "
          f"cog {per_command['cog'] / 1e3:.0f}")
    print(f"  added: inline {inline / 1e3:.0f}, cog {cog / 1e3:.0f}; "
          f"cog / inline = {cog / inline:.2f}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        sys.path.insert(0, str(Path(__file__).parent))
        asyncio.run(_run(sys.argv[2], float(sys.argv[3]), int(sys.argv[4])))
        raise SystemExit(0)
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=1.0)
    parser.add_argument("--errors", action="store_true",
                        help="count the error path instead (bench_errors_memory.py's bots)")
    arguments = parser.parse_args()
    raise SystemExit(main(arguments.rate, arguments.errors))

"""``python -m tux_sentry_cog demo [--dsn URL] [--json FILE]``."""

from __future__ import annotations

import sys

USAGE = "usage: python -m tux_sentry_cog demo [--dsn URL] [--json FILE]"


def main(argv: list[str]) -> int:
    """Dispatch the sub-command."""
    if not argv or argv[0] != "demo":
        print(USAGE, file=sys.stderr)
        return 2
    from tux_sentry_cog.demo import main as demo_main  # noqa: PLC0415 - load on demand

    return demo_main(argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

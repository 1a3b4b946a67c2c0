"""docs/testing.md's examples run as written, in a project of their own.

Each ``python`` block whose first line names a file (``# test_bot.py``) is written to a
fresh folder, and pytest runs there in a subprocess: no configuration of this project
(``asyncio_mode``, its conftest) and the fixtures only through the package's pytest11
entry point, as a bot owner's project would get them.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent.parent / "docs" / "testing.md"


def _examples() -> dict[str, str]:
    blocks = re.findall(r"```python\n(.*?)```", DOCS.read_text(), flags=re.DOTALL)
    files: dict[str, str] = {}
    for block in blocks:
        first = block.splitlines()[0]
        match = re.fullmatch(r"# ((?:test_\w+|conftest)\.py)", first.strip())
        if match:
            files[match.group(1)] = block
    return files


def test_the_testing_page_examples_pass_as_written(tmp_path: Path) -> None:
    examples = _examples()
    assert any(name.startswith("test_") for name in examples), examples
    for name, text in examples.items():
        (tmp_path / name).write_text(text)
    result = subprocess.run(  # noqa: S603 - this interpreter, running pytest
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"\b3 passed\b", result.stdout), result.stdout

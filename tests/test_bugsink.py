"""Delivery to a real Sentry-protocol server: Bugsink, on loopback, fed by the demo.

Relay's normaliser (``assert_sentry_accepts``) says an event is well formed; this module
says a real server stores it as we mean it. Bugsink (PyPI ``bugsink``) is a Django app
that speaks the Sentry protocol, stores events in SQLite and groups them into issues by
the fingerprint the SDK sent. It is installed once into a venv of its own under the
user's cache dir (keyed by its version, so a new pin installs afresh), configured for
this session only (its databases and ingest dir in a temporary folder, tasks run in the
request, no phoning home, every event checked against its schema with a warning on
failure), served by gunicorn on 127.0.0.1 and stopped by the fixture's teardown.

The demo (``python -m tux_sentry_cog demo --dsn``) runs its whole workload against it;
then the test reads Bugsink's own tables and files.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
import venv
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tux_sentry_cog.demo import DEMO_BOT_TOKEN

if TYPE_CHECKING:
    from collections.abc import Iterator

#: The Bugsink release the test runs against (the cached venv is keyed by it).
BUGSINK_VERSION = "2.6.2"

#: Text from the demo's arguments and options that must never be stored.
_ARGUMENT_MARKERS = ("555-0100", "call me at", "quarterly")


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "tux_sentry_cog" / f"bugsink-{BUGSINK_VERSION}"


def _index_unreachable(python: Path) -> str | None:
    """pip's own words if it could not connect to the index, else None.

    pip reports an index it cannot connect to only at debug level ("Could not fetch
    URL ...: connection error"), then says no version was found, as it would for a
    release that does not exist; so a failed install is asked again, verbosely.
    """
    probe = subprocess.run(  # noqa: S603 - our own venv's pip, fixed arguments
        [str(python), "-m", "pip", "download", "-vv", "--no-deps", "--dest", str(python.parent),
         f"bugsink=={BUGSINK_VERSION}"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if probe.returncode == 0:
        return None
    lines = [line for line in (probe.stdout + probe.stderr).splitlines()
             if "Could not fetch URL" in line and "connection error" in line]
    return lines[0].strip() if lines else None


def _install() -> Path:
    """The cached venv's bin dir, installing Bugsink first if it is not there yet."""
    target = _cache_dir()
    ready = target / "installed"
    if ready.exists():
        return target / "bin"
    # Built next to its final place and renamed, so a run stopped half way (or two
    # sessions at once) never leaves a venv that looks complete but is not.
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.parent / f"{target.name}.{os.getpid()}.partial"
    venv.create(staging, with_pip=True)
    result = subprocess.run(  # noqa: S603 - our own venv's pip, fixed arguments
        [
            str(staging / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            f"bugsink=={BUGSINK_VERSION}",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if result.returncode != 0:
        output = result.stdout + result.stderr
        unreachable = _index_unreachable(staging / "bin" / "python")
        subprocess.run(["rm", "-rf", str(staging)], check=False)  # noqa: S603, S607
        if unreachable:
            pytest.skip(f"the package index cannot be reached to install Bugsink: {unreachable}")
        pytest.fail(f"installing bugsink=={BUGSINK_VERSION} failed:\n{output}")
    # A venv's scripts name its own path; fix them for the final place before renaming.
    for script in (staging / "bin").iterdir():
        if script.is_file() and not script.is_symlink():
            data = script.read_bytes()
            if data.startswith(b"#!") and str(staging).encode() in data:
                script.write_bytes(data.replace(str(staging).encode(), str(target).encode()))
    cfg = staging / "pyvenv.cfg"
    cfg.write_text(cfg.read_text().replace(str(staging), str(target)))
    try:
        staging.rename(target)
    except OSError:  # another session finished first: use its venv
        subprocess.run(["rm", "-rf", str(staging)], check=False)  # noqa: S603, S607
    (target / "installed").write_text(BUGSINK_VERSION)
    return target / "bin"


def _bound_socket() -> socket.socket:
    # Bound here and handed to gunicorn (--bind fd://N), so no other process (another
    # pytest worker's endpoint, say) can take the port between choosing it and serving.
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.set_inheritable(True)
    return sock


@dataclass
class Bugsink:
    """A running Bugsink: its DSN, its folder (every stored byte) and its log."""

    dsn: str
    key: str
    folder: Path
    log: Path
    bin: Path
    env: dict[str, str]

    @property
    def database(self) -> Path:
        """The SQLite file holding events, issues and tags."""
        return self.folder / "db.sqlite3"

    def manage(self, *args: str) -> str:
        """Run ``bugsink-manage`` against this instance; its stdout."""
        result = subprocess.run(  # noqa: S603 - the cached venv's own script
            [str(self.bin / "bugsink-manage"), *args],
            capture_output=True,
            text=True,
            env=self.env,
            cwd=self.folder,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout


def _configure(bin_dir: Path, folder: Path, port: int) -> None:
    conf = folder / "bugsink_conf.py"
    subprocess.run(  # noqa: S603 - the cached venv's own script
        [
            str(bin_dir / "bugsink-create-conf"),
            "--template=local",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "-o",
            str(conf),
        ],
        check=True,
        capture_output=True,
    )
    with conf.open("a") as out:
        out.write(
            f"""
# This session's instance: nothing outside its folder, nothing over the network.
SNAPPEA = {{"TASK_ALWAYS_EAGER": True}}
DATABASES["default"]["NAME"] = {str(folder / "db.sqlite3")!r}
DATABASES["snappea"]["NAME"] = {str(folder / "snappea.sqlite3")!r}
BUGSINK["PHONEHOME"] = False
BUGSINK["INGEST_STORE_BASE_DIR"] = {str(folder / "ingest")!r}
# Every event is checked against Bugsink's schema; a failure is a logged warning.
BUGSINK["VALIDATE_ON_DIGEST"] = "warn"
"""
        )


@pytest.fixture(scope="module")
def bugsink(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bugsink]:
    """Bugsink installed (or taken from the cache), configured, migrated and serving."""
    bin_dir = _install()
    folder = tmp_path_factory.mktemp("bugsink")
    listening = _bound_socket()
    port = int(listening.getsockname()[1])
    _configure(bin_dir, folder, port)
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "bugsink_conf",
        "PYTHONPATH": str(folder),
    }
    env.pop("VIRTUAL_ENV", None)
    server = Bugsink("", "", folder, folder / "server.log", bin_dir, env)
    server.manage("migrate", "-v0")
    server.manage("migrate", "--database=snappea", "-v0")
    server.dsn = server.manage(
        "shell",
        "-c",
        "from teams.models import Team; from projects.models import Project; "
        "team = Team.objects.create(name='ci'); "
        "print(Project.objects.create(name='bot', team=team).dsn)",
    ).strip().splitlines()[-1]
    server.key = server.dsn.split("//", 1)[1].split("@", 1)[0]
    with server.log.open("wb") as log:
        process = subprocess.Popen(  # noqa: S603 - the cached venv's own gunicorn
            [
                str(bin_dir / "gunicorn"),
                "--bind",
                f"fd://{listening.fileno()}",
                "--workers",
                "1",
                "--no-control-socket",
                "bugsink.wsgi",
            ],
            env=env,
            cwd=folder,
            stdout=log,
            stderr=subprocess.STDOUT,
            pass_fds=(listening.fileno(),),
        )
    listening.close()  # gunicorn has its own copy
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{port}/health/ready", timeout=2
                ) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            assert process.poll() is None, server.log.read_text()
            assert time.monotonic() < deadline, server.log.read_text()
            time.sleep(0.1)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass
class Stored:
    """What Bugsink kept, read from its own tables after the demo ran."""

    events: list[dict[str, Any]]
    issue_of: list[str]  # the issue id of each event
    issues: int
    sent: list[dict[str, Any]]  # the events the demo's SDK was handed


@pytest.fixture(scope="module")
def stored(bugsink: Bugsink, tmp_path_factory: pytest.TempPathFactory) -> Stored:
    """Run the demo against Bugsink's DSN and read back what it stored."""
    report = tmp_path_factory.mktemp("demo") / "demo.json"
    demo = [sys.executable, "-m", "tux_sentry_cog", "demo"]
    result = subprocess.run(  # noqa: S603 - this interpreter, running our own demo
        [*demo, "--dsn", bugsink.dsn, "--json", str(report)],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    items = json.loads(report.read_text())
    sent = [item["payload"] for item in items if item["type"] == "event"]
    with sqlite3.connect(bugsink.database) as db:
        rows = db.execute(
            "SELECT data, issue_id FROM events_event ORDER BY digest_order"
        ).fetchall()
        (issues,) = db.execute("SELECT count(*) FROM issues_issue").fetchone()
    return Stored([json.loads(data) for data, _ in rows], [i for _, i in rows], issues, sent)


def test_every_event_sent_is_stored(stored: Stored) -> None:
    """Bugsink kept each error and message event the demo sent, once."""
    assert len(stored.sent) >= 10
    assert sorted(e["event_id"] for e in stored.events) == sorted(
        e["event_id"] for e in stored.sent
    )


def test_one_issue_per_fingerprint_group(stored: Stored) -> None:
    """Bugsink groups by the fingerprint we send: one issue per group, not per event."""
    issues_by_group: dict[tuple[str, ...], set[str]] = defaultdict(set)
    for event, issue in zip(stored.events, stored.issue_of, strict=True):
        issues_by_group[tuple(event["fingerprint"])].add(issue)
    assert all(len(issues) == 1 for issues in issues_by_group.values()), issues_by_group
    assert stored.issues == len(issues_by_group)
    # The spike's divisions by zero are one issue (the demo repeats them on purpose): the
    # demo's event budget sends 3 of the 7, and the one an hour later with its `noise`.
    divide = [e for e in stored.events if e["fingerprint"][:1] == ["ZeroDivisionError"]]
    assert len(divide) == 4
    assert [e["contexts"]["noise"]["suppressed"] for e in divide if "noise" in e["contexts"]] == [4]
    assert len(issues_by_group[tuple(divide[0]["fingerprint"])]) == 1
    sent_groups = {tuple(e["fingerprint"]) for e in stored.sent}
    assert set(issues_by_group) == sent_groups


def test_a_stored_event_carries_our_tags_and_contexts(bugsink: Bugsink, stored: Stored) -> None:
    """The tags and contexts docs/events.md lists, as Bugsink stored and indexed them."""
    event = next(e for e in stored.events if e["fingerprint"][:1] == ["ZeroDivisionError"])
    tags = event["tags"]
    assert tags["command.name"] == "divide"
    assert tags["command.type"] == "prefix"
    assert tags["cog"] == "DemoCommands"
    assert tags["error.category"] == "internal"
    assert tags["error.severity"] == "error"
    assert tags["error.related"] in {"yes", "no"}
    assert tags["guild.id"].isdigit()
    assert len(tags["correlation_id"]) == 32
    contexts = event["contexts"]
    for name in ("error", "command", "discord_user", "guild", "channel", "system", "correlation"):
        assert name in contexts, sorted(contexts)
    assert contexts["command"]["name"] == "divide"
    assert contexts["correlation"]["correlation_id"] == tags["correlation_id"]
    assert event["user"]["id"].isdigit()
    # Bugsink indexes tags for search: ours are among its tag keys.
    with sqlite3.connect(bugsink.database) as db:
        keys = {key for (key,) in db.execute("SELECT key FROM tags_tagkey")}
    assert {"command.name", "command.type", "error.category", "guild.id"} <= keys, keys


def _stored_bytes(folder: Path) -> Iterator[tuple[Path, bytes]]:
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.suffix != ".py" and path.name != "server.log":
            yield path, path.read_bytes()


def test_no_secret_in_any_stored_byte(bugsink: Bugsink, stored: Stored) -> None:
    """Not the bot token, an interaction token or an argument, anywhere Bugsink wrote."""
    assert stored.events  # the demo ran and Bugsink stored what it sent
    needles = [DEMO_BOT_TOKEN, "interaction-token-", *_ARGUMENT_MARKERS]
    files = list(_stored_bytes(bugsink.folder))
    assert any(path.name == "db.sqlite3" for path, _ in files)
    for path, data in files:
        for needle in needles:
            assert needle.encode() not in data, (needle, path)


def test_the_dsn_key_is_stored_only_as_the_projects_own_key(
    bugsink: Bugsink, stored: Stored
) -> None:
    """The DSN key is Bugsink's own credential; no event, tag or file may hold it."""
    assert stored.events
    key = bugsink.key.encode()
    with sqlite3.connect(bugsink.database) as db:
        (found,) = db.execute(
            "SELECT count(*) FROM projects_project WHERE sentry_key = ?", (bugsink.key,)
        ).fetchone()
        assert found == 1  # where Bugsink keeps it, and the only row allowed to
        events = db.execute("SELECT data FROM events_event").fetchall()
        tags = db.execute("SELECT value FROM tags_tagvalue").fetchall()
    assert not [d for (d,) in events if bugsink.key in d]
    assert not [v for (v,) in tags if bugsink.key in str(v)]
    others = [p for p, data in _stored_bytes(bugsink.folder) if key in data]
    assert {p.name for p in others} <= {"db.sqlite3", "db.sqlite3-wal"}, others


def test_no_validation_warning(bugsink: Bugsink, stored: Stored) -> None:
    """Every event passed Bugsink's schema check (it logs a warning for one that fails)."""
    assert stored.events
    log = bugsink.log.read_text()
    # Bugsink's ingest log reaches this file (it notes the items it does not store),
    # so a warning would be seen here.
    assert "skipping non-supported envelope item" in log, log
    assert "validation failed" not in log, log
    assert "ValidationError" not in log, log
    assert "Traceback" not in log, log

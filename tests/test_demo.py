"""The demo, the README's first command, runs and really captures what it reports."""

from __future__ import annotations

import json

from tux_sentry_cog.demo import message_text, run_demo, spotlight_dsn
from tux_sentry_cog.testing import SentryEndpoint


async def test_demo_report(tmp_path, capsys):
    path = tmp_path / "envelopes.json"
    totals = await run_demo(json_path=path)
    out = capsys.readouterr().out
    assert totals["events"] >= 10  # internal, API, timeout, slash, component, spike runs
    # the missed deadline, the global rate limit, the error spike, the performance anomaly
    assert totals["messages"] == 4
    assert totals["transactions"] >= 80
    assert totals["metrics"] > 0
    assert totals["status_embed"] is True
    assert totals["task_events"] == 2  # the failed cleanup and the retried feed
    # The spike's group meets the demo's budget (3 an hour): !divide 1 0 and two of the
    # six !divide 2 0 are sent, four held back; an hour later the next says so.
    assert totals["held_back"] == 4
    assert totals["noise_events"] == 1
    assert "noise.suppressed=4" in out
    # cleanup: in_progress, error; feed: in_progress, error (retried), in_progress, ok
    assert totals["check_ins"] == 6
    assert "tux-jobs-cleanup" in out
    assert "Error spike: ZeroDivisionError in divide" in out
    assert "Performance anomaly: lookup" in out
    assert "db.query select profiles" in out
    assert "555-0100" not in path.read_text()  # the private argument never left
    assert "demo-interaction-token" not in path.read_text()  # nor the interaction's token
    items = json.loads(path.read_text())
    types = {item["type"] for item in items}
    assert {"event", "transaction", "trace_metric"} <= types


async def test_demo_shows_one_honest_related_pair(tmp_path, capsys):
    path = tmp_path / "envelopes.json"
    totals = await run_demo(json_path=path)
    events = [i["payload"] for i in json.loads(path.read_text()) if i["type"] == "event"]
    related = [e for e in events if e.get("tags", {}).get("error.related") == "yes"]
    assert totals["related"] == 1
    [pair] = related
    assert pair["tags"]["command.name"] == "export"
    [earlier] = pair["contexts"]["correlation"]["related_errors"]
    assert earlier["relation"] == "same_command"
    assert earlier["fingerprint"].startswith("TimeoutError|archive storage did not answer")
    assert pair["exception"]["values"][-1]["type"] == "PermissionError"


async def test_demo_summarises_transactions_per_name(tmp_path, capsys):
    path = tmp_path / "envelopes.json"
    totals = await run_demo(json_path=path)
    out = capsys.readouterr().out
    items = json.loads(path.read_text())
    transactions = [i["payload"] for i in items if i["type"] == "transaction"]
    names = {t["transaction"] for t in transactions}
    assert totals["transaction_names"] == len(names)
    assert f"Transactions sent: {len(transactions)} in {len(names)} names" in out
    lookup = [line for line in out.splitlines() if line.strip().startswith("lookup ")]
    [row] = lookup
    count = sum(1 for t in transactions if t["transaction"] == "lookup")
    assert f" {count} " in row  # 72 runs, one row
    assert row.count(" ms") == 2  # p50 and p95


async def test_demo_cog_messages_are_logentries(tmp_path):
    path = tmp_path / "envelopes.json"
    await run_demo(json_path=path)
    events = [i["payload"] for i in json.loads(path.read_text()) if i["type"] == "event"]
    messages = [e for e in events if "exception" not in e]
    assert [message_text(e) for e in messages] == [
        "Interaction deadline missed: search",
        "Discord global rate limit",
        "Error spike: ZeroDivisionError in divide",
        "Performance anomaly: lookup",
    ]
    assert all("message" not in e for e in events)


async def test_demo_with_a_dsn_reports_and_writes_json(tmp_path, capsys):
    path = tmp_path / "envelopes.json"
    with SentryEndpoint() as elsewhere:  # "your Sentry"
        totals = await run_demo(dsn=elsewhere.dsn, json_path=path)
        received = elsewhere.events()
    out = capsys.readouterr().out
    assert totals["events"] >= 10
    assert "Error spike: ZeroDivisionError in divide" in out
    assert "What Sentry answered: accepted" in out
    items = json.loads(path.read_text())
    written = [i["payload"]["event_id"] for i in items if i["type"] == "event"]
    assert written == [e["event_id"] for e in received]


def test_spotlight_dsn() -> None:
    assert spotlight_dsn(None) == "http://spotlight@127.0.0.1:8969/1"
    assert spotlight_dsn("http://localhost:9000/stream") == "http://spotlight@localhost:9000/1"


async def test_demo_sends_to_spotlight_as_a_dsn(tmp_path, capsys):
    with SentryEndpoint() as sidecar:
        port = sidecar.port
        totals = await run_demo(spotlight=f"http://127.0.0.1:{port}/stream")
        transactions = sidecar.transactions()
    out = capsys.readouterr().out
    assert "Spotlight (127.0.0.1)" in out
    assert totals["events"] >= 10
    assert len(transactions) == totals["transactions"]
    # Through the transport's thread: no request to the sidecar inside a command's trace.
    spans = [s for t in transactions for s in t.get("spans", [])]
    assert not [s for s in spans if f":{port}" in json.dumps(s)]


async def test_demo_shows_discord_limits(tmp_path, capsys):
    path = tmp_path / "envelopes.json"
    await run_demo(json_path=path)
    out = capsys.readouterr().out
    items = json.loads(path.read_text())
    metrics = [m for i in items if i["type"] == "trace_metric" for m in i["payload"]["items"]]
    limited = sorted(
        (m["attributes"]["scope"]["value"], m["attributes"]["route"]["value"])
        for m in metrics
        if m["name"] == "tux.discord.rate_limited"
    )
    assert limited == [
        ("global", "POST /interactions/{id}/{token}/callback"),
        ("route", "POST /channels/{id}/messages"),
    ]
    [missed] = [m for m in metrics if m["name"] == "tux.interactions.deadline_missed"]
    assert missed["attributes"]["command_name"]["value"] == "search"
    events = [i["payload"] for i in items if i["type"] == "event"]
    [unknown] = [e for e in events if e.get("tags", {}).get("command.name") == "search"
                 and "exception" in e]
    assert unknown["contexts"]["interaction_deadline"]["missed"] is True
    assert "**REST 429s (5 min):** global 1, route 1" in out
    assert "**Interaction deadline misses:** 1 in 5 min, 1 in all" in out

"""The demo, the README's first command, runs and really captures what it reports."""

from __future__ import annotations

import json

from tux_sentry_cog.demo import run_demo


async def test_demo_report(tmp_path, capsys):
    path = tmp_path / "envelopes.json"
    totals = await run_demo(json_path=path)
    out = capsys.readouterr().out
    assert totals["events"] >= 10  # internal, API, timeout, slash, component, spike runs
    assert totals["messages"] == 2  # the error spike and the performance anomaly
    assert totals["transactions"] >= 80
    assert totals["metrics"] > 0
    assert totals["status_embed"] is True
    assert totals["task_events"] == 2  # the failed cleanup and the retried feed
    # cleanup: in_progress, error; feed: in_progress, error (retried), in_progress, ok
    assert totals["check_ins"] == 6
    assert "tux-jobs-cleanup" in out
    assert "Error spike: ZeroDivisionError in divide" in out
    assert "Performance anomaly: lookup" in out
    assert "db.query select profiles" in out
    assert "555-0100" not in path.read_text()  # the private argument never left
    items = json.loads(path.read_text())
    types = {item["type"] for item in items}
    assert {"event", "transaction", "trace_metric"} <= types

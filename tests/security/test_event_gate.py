"""Rate-limited events: one per key and minute, and every held-back one counted somewhere."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from litemirror.server.ops.event_log import EventLog, Gate


def test_gate_lets_one_through_per_interval_and_counts_the_rest() -> None:
    g = Gate(every_s=60.0)
    assert g.check("k", 0.0) == 0
    assert [g.check("k", t) for t in (1.0, 2.0, 59.9)] == [None, None, None]
    assert g.check("other", 3.0) == 0  # keys are independent
    # The first one after the minute says how many were held back.
    assert g.check("k", 60.0) == 3
    assert g.check("k", 61.0) is None


def test_due_reports_a_key_that_went_quiet_with_events_held_back() -> None:
    g = Gate(every_s=60.0)
    g.check("k", 0.0)
    g.check("k", 1.0)
    g.check("k", 2.0)
    g.check("quiet", 0.0)
    assert g.due(59.0) == []
    due = g.due(60.0)
    assert [(key, e.held) for key, e in due] == [("k", 2)]
    assert g.due(1000.0) == []  # reported once
    assert g.check("k", 1000.0) == 0  # and not counted again
    assert not g._keys or list(g._keys) == ["k"]  # quiet keys forgotten


def test_memory_is_bounded_and_what_was_forgotten_is_still_counted() -> None:
    g = Gate(every_s=60.0, max_keys=10)
    for i in range(10):
        g.check(i, 0.0)
        g.check(i, 1.0)  # one held back each
    g.check("new", 2.0)
    assert len(g._keys) == 10 and g.overflow == 1


class Clock:
    """A fake clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_event_log_says_how_many_were_held_back(tmp_path: Path) -> None:
    clock = Clock()
    log = EventLog(tmp_path / "events.jsonl", "a", clock=clock)
    for i in range(5):
        log.emit_limited("connection_refused", ("h1", "cap"), f"refused #{i}", peer=f"h1:{i}")
        clock.now += 1
    log.emit_limited("connection_refused", ("h2", "cap"), "refused h2", peer="h2:1")
    assert [e["message"] for e in lines(log.path)] == ["refused #0", "refused h2"]
    clock.now += 60
    log.flush()  # h1's minute ended with 4 held back: a summary says so
    last = lines(log.path)[-1]
    assert last["kind"] == "connection_refused" and last["data"]["held_back"] == 4
    assert last["message"].startswith("4 more like this held back")
    assert "refused #4" in last["message"] and last["data"]["peer"] == "h1:4"
    # A key that went quiet after being summarised starts afresh.
    log.emit_limited("connection_refused", ("h1", "cap"), "refused again", peer="h1:9")
    assert lines(log.path)[-1]["message"] == "refused again"
    # Without a flush, the next event after the minute carries the count.
    log.emit_limited("connection_refused", ("h1", "cap"), "held", peer="h1:10")
    clock.now += 61
    log.emit_limited("connection_refused", ("h1", "cap"), "next", peer="h1:11")
    assert lines(log.path)[-1]["message"] == "next (1 more like it held back in the last 60 s)"
    log.close()


def test_event_log_keeps_its_file_open_and_follows_a_rotation(tmp_path: Path) -> None:
    log = EventLog(tmp_path / "events.jsonl", "a")
    log.emit("k", "one")
    os.rename(log.path, tmp_path / "events.jsonl.1")
    log.emit("k", "two")
    assert [e["message"] for e in lines(tmp_path / "events.jsonl.1")] == ["one"]
    assert [e["message"] for e in lines(log.path)] == ["two"]
    log.close()

"""``litemirror events`` against real members: one read over HTTP, one from its events.jsonl.

Member a serves HTTP (its events come from ``GET /events``); member b has no
``http`` (its events come from its data dir). The command merges both by
time; ``--follow`` prints what happens next on both as it happens.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from litemirror.testing.cluster import Cluster, free_port

FAST = {"qos_timeout_ms": 1000, "heartbeat_ms": 200}


class HalfHttpCluster(Cluster):
    """Member a gets an http address; b does not."""

    http_a = ""

    def write_config(self) -> None:
        super().write_config()
        if not self.http_a:
            self.http_a = f"127.0.0.1:{free_port()}"
        text = self.config_path.read_text()
        marker = f'name = "a"\naddress = "{self.members["a"].address}"\n'
        assert marker in text
        self.config_path.write_text(text.replace(marker, marker + f'http = "{self.http_a}"\n'))


def events_cmd(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "litemirror.cli.main", "events", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def parse(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_events_merged_filtered_and_followed(tmp_path: Path) -> None:
    c = HalfHttpCluster(tmp_path, members=(("a", "failover"), ("b", "failover")), mirror=FAST)
    follow: subprocess.Popen[str] | None = None
    try:
        c.start()
        c["a"].wait_until(lambda st: st.get("backup_active") is True, 20, "backup active")
        cfg = c.config_path

        res = events_cmd(cfg, "--json")
        assert res.returncode == 0, res.stderr
        evs = parse(res.stdout)
        assert {e["member"] for e in evs} == {"a", "b"}
        assert [e["ts"] for e in evs] == sorted(e["ts"] for e in evs)
        roles = {e["member"]: e["message"] for e in evs if e["kind"] == "role"}
        assert roles["a"].startswith("member a is primary")
        assert roles["b"].startswith("member b is backup")

        only_b = parse(events_cmd(cfg, "--json", "--member", "b").stdout)
        assert only_b and {e["member"] for e in only_b} == {"b"}
        future = str(time.time() + 3600)
        assert parse(events_cmd(cfg, "--json", "--since", future).stdout) == []
        assert len(parse(events_cmd(cfg, "--json", "--limit", "2").stdout)) == 2
        warn = parse(events_cmd(cfg, "--json", "--min-severity", "warning").stdout)
        assert all(e["severity"] != "info" for e in warn)

        human = events_cmd(cfg)
        assert human.returncode == 0
        assert "member a is primary" in human.stdout and " INFO " in human.stdout

        bad = events_cmd(cfg, "--since", "yesterday-ish")
        assert bad.returncode == 2 and "--since" in bad.stderr
        unknown = events_cmd(cfg, "--member", "zz")
        assert unknown.returncode == 2 and "no member named zz" in unknown.stderr

        # --follow: start it, then make things happen on both members.
        t0 = time.time()
        follow = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "litemirror.cli.main",
                "events",
                "--config",
                str(cfg),
                "--follow",
                "--json",
                "--interval",
                "0.2",
                "--since",
                str(t0),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        seen: list[dict[str, Any]] = []

        def reader() -> None:
            assert follow is not None and follow.stdout is not None
            for line in follow.stdout:
                seen.append(json.loads(line))

        threading.Thread(target=reader, daemon=True).start()
        time.sleep(1.0)
        assert seen == []  # nothing happened since t0

        c["b"].stop()  # a (HTTP) reports its backup gone; b (file) logs its new start
        c["b"].start()

        def got(member: str, kind: str) -> bool:
            return any(e["member"] == member and e["kind"] == kind for e in seen)

        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (
            got("a", "backup_inactive") and got("a", "backup_active") and got("b", "role")
        ):
            time.sleep(0.1)
        assert got("a", "backup_inactive"), seen  # read over HTTP from a
        assert got("b", "role"), seen  # read from b's events.jsonl
        assert got("a", "backup_active"), seen
        assert all(e["ts"] >= t0 for e in seen)
        # Nothing printed twice.
        keys = [(e["member"], e["ts"], e["kind"], e["message"]) for e in seen]
        assert len(keys) == len(set(keys))

        follow.send_signal(signal.SIGINT)
        assert follow.wait(10) == 0
    finally:
        if follow is not None and follow.poll() is None:
            follow.kill()
        c.kill_all()


def test_events_unreachable_member_reported(tmp_path: Path) -> None:
    """With every source down, the command says so and exits 3."""
    c = HalfHttpCluster(tmp_path, members=(("a", "failover"),))
    res = events_cmd(c.config_path, "--source", "http")
    assert res.returncode == 3
    assert f"cannot read http://{c.http_a}/events" in res.stderr
    res = events_cmd(c.config_path, "--source", "file")
    assert res.returncode == 3 and "events.jsonl" in res.stderr

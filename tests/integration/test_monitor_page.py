"""The Mirror Monitor page in a real headless Chromium, across a real switchover."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from test_http_api import FAST, get_json, roles

import litemirror
from litemirror import errors
from litemirror.testing.cluster import Cluster

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


class Load:
    """A trickle of inserts through the mirror URL, so the lag chart has something to show."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.stop = threading.Event()
        self.done = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        conn = None
        while not self.stop.is_set():
            try:
                if conn is None:
                    conn = litemirror.connect(self.url, isolation_level=None, connect_timeout=15)
                    conn.execute("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v BLOB)")
                conn.execute("INSERT INTO t (v) VALUES (randomblob(200))")
                self.done += 1
            except errors.Error:
                conn = None  # switchover: the driver finds the new primary
                time.sleep(0.1)
            time.sleep(0.02)

    def __enter__(self) -> Load:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(30)


def test_monitor_shows_the_mirror_and_a_switchover(tmp_path: Path, browser_page: Any) -> None:
    page = browser_page
    c = Cluster(
        tmp_path / "mirror",
        members=[("a", "failover"), ("b", "failover"), ("r", "reporting")],
        arbiter=True,
        mirror=FAST,
        http=True,
    )
    c.start()
    try:
        primary, backup = roles(c)
        with Load(c.url()) as load:
            page.goto(f"http://{c.http[primary]}/")
            for name in ("a", "b", "r"):
                page.wait_for_selector(f'#members tr[data-member="{name}"]', timeout=15000)
            row = page.locator(f'#members tr[data-member="{primary}"]')
            assert row.get_attribute("data-role") == "primary"
            assert page.locator(f'#members tr[data-member="{backup}"]').get_attribute(
                "data-role"
            ) == ("backup")
            assert page.locator('#members tr[data-member="r"]').get_attribute("data-role") == (
                "reporting"
            )
            page.wait_for_function(
                "document.querySelector('#headline').textContent.includes('accepts writes')"
            )
            assert page.locator("#databases tr[data-database='app']").count() == 1
            assert "held by" in page.locator("#arbiter").inner_text()
            # Let the chart collect a few seconds of lag under load.
            deadline = time.monotonic() + 20
            while load.done < 50 and time.monotonic() < deadline:
                time.sleep(0.2)
            page.wait_for_selector("#lag-chart svg path", state="attached", timeout=15000)

            proc = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "litemirror.cli.main",
                    "switchover",
                    "--to",
                    backup,
                    "--config",
                    str(c.config_path),
                ],
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert proc.returncode == 0, proc.stdout + proc.stderr + c.logs()

            # The page, still served by the old primary, shows the new roles without a reload.
            page.wait_for_selector(
                f'#members tr[data-member="{backup}"][data-role="primary"]', timeout=20000
            )
            page.wait_for_selector(
                f'#members tr[data-member="{primary}"][data-role="backup"]', timeout=20000
            )
            page.wait_for_function(
                f"document.querySelector('#headline').textContent"
                f".includes('Primary {backup} accepts writes')",
                timeout=20000,
            )
            page.wait_for_selector('#events li[data-kind="switchover"]', timeout=20000)
            # Give the chart and events a moment to show the new primary's view.
            time.sleep(3)
        assert get_json(f"http://{c.http[backup]}/primary")[0] == 200
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "monitor.png"), full_page=True)
        assert (ARTIFACTS / "monitor.png").stat().st_size > 10_000

        # An incident: the reporting member dies; the page says so at once.
        c["r"].kill()
        page.wait_for_selector('#members tr[data-member="r"][data-role="down"]', timeout=15000)
        page.wait_for_selector('#banner[data-level="warn"]', timeout=15000)
        assert "Down: r" in page.locator("#failover-mode").inner_text()
        page.screenshot(path=str(ARTIFACTS / "monitor-member-down.png"), full_page=True)
    finally:
        c.kill_all()


def test_status_watch_redraws_the_same_view(tmp_path: Path) -> None:
    """``litemirror status --watch`` keeps redrawing until Ctrl-C and shows a member going down."""
    c = Cluster(
        tmp_path,
        members=[("a", "failover"), ("b", "failover"), ("r", "reporting")],
        arbiter=True,
        mirror=FAST,
        http=True,
    )
    c.start()
    try:
        primary, _ = roles(c)
        watch = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "litemirror.cli.main",
                "status",
                "--watch",
                "--interval",
                "0.5",
                "--config",
                str(c.config_path),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "COLUMNS": "140"},
        )
        time.sleep(2)
        c["r"].kill()
        time.sleep(3)
        assert watch.poll() is None, "status --watch stopped on its own"
        watch.send_signal(signal.SIGINT)
        out, err = watch.communicate(timeout=20)
        assert watch.returncode == 0, err
        # Not a terminal: rich prints the last frame when the watch ends.
        assert f"Primary {primary} accepts writes" in out
        assert "Down: r" in out and "unreachable" in out
        assert "refreshing every 0.5s" in out
    finally:
        c.kill_all()

"""Issue 12, item 6: the arbiter under a flood, and a ``status`` that tells the truth about it.

The arbiter took unlimited anonymous control sessions and never timed
them out: a member restarted during such a flood could not reach it, so
the mirror could not fail over -- while ``litemirror status`` still said
"automatic failover ready", because it looked only at the primary. Now
the arbiter admits connections like a member does (anonymous ones capped
and closed after ``limits.anonymous_timeout_s``, members' sessions never
refused), and ``status`` says failover is ready only when the primary and
the backup each hold a session the arbiter confirms.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from litemirror.testing.cluster import free_port
from litemirror.testing.flood import Flood
from litemirror.testing.proxy import FaultProxy, Rule
from litemirror.testing.secured import (
    ATTACKERS,
    cli,
    secured_cluster,
    start_with_users,
    wait_primary,
)
from litemirror.testing.workload import other


def has_arbiter_session(st: dict[str, object]) -> bool:
    fo = st.get("failover")
    return isinstance(fo, dict) and bool(fo.get("arbiter_up"))


@pytest.mark.slow
def test_a_member_restarted_during_a_flood_of_the_arbiter_reaches_it(tmp_path: Path) -> None:
    c = secured_cluster(
        tmp_path,
        distinct_hosts=True,
        mirror={"qos_timeout_ms": 2000, "heartbeat_ms": 250},
        arbiter_nofile=384,  # 600 sessions ran it out of descriptors before
    )
    assert c.arbiter is not None and c.certs is not None
    flood: Flood | None = None
    try:
        start_with_users(c)
        primary = wait_primary(c)
        backup = other(primary)
        flood = Flood(
            c.arbiter.host,
            c.arbiter.port,
            ATTACKERS[:30],
            20,
            ca=str(c.certs / "ca.crt"),
            retry_s=2.0,
        ).start()
        flood.wait_tried(600)
        # Anonymous sessions are refused past their caps and closed after their time
        # (they used to be neither: 600 of them held 600 descriptors for good).
        deadline = time.monotonic() + 20
        while flood.closed == 0 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert flood.refused > 0 and flood.closed > 0, str(flood)
        assert max(flood.lifetimes) < 13, flood.lifetimes  # limits.anonymous_timeout_s: 10 s

        # A member restarted during the flood gets its session with the arbiter.
        c[backup].kill()
        c[backup].start(wait=False)
        st = c[backup].wait_until(has_arbiter_session, 60, "a session with the arbiter")
        assert st["failover"]["arbiter_session"]["connected"], st["failover"]
        c[primary].wait_until(
            lambda s: s.get("backup_active") is True and backup in s["failover"]["arbiter_sees"],
            60,
            "the backup active and seen by the arbiter",
        )
        c[backup].wait_until(
            lambda s: s["failover"]["state"] == "backup active",
            30,
            "the backup knows it is active",
        )
        # Ready means the arbiter has *recorded* the backup active and both members
        # have heard it (under the flood that takes a moment after the request).
        for who in (primary, backup):
            c[who].wait_until(
                lambda s: (s["failover"].get("arbiter_record") or {}).get("backup_active"),
                30,
                "the arbiter's record says the backup is active",
            )
        # And the mirror can fail over: the arbiter grants the backup the next epoch.
        c[primary].kill()
        st = c[backup].wait_until(lambda s: bool(s.get("writable")), 30, "took over")
        assert st["role"] == "primary"

        refused = c.arbiter.events("connection_refused")
        assert refused, "the arbiter's refusals are events"
        assert all(ev["data"]["peer"].split(":")[0] in ATTACKERS for ev in refused), refused[:3]
        log = c.arbiter.log_path.read_text(errors="replace")
        assert len(re.findall(r"Errno 24|Too many open files", log)) < 10
    finally:
        if flood is not None:
            flood.stop()
        c.kill_all()


def test_status_names_the_member_without_an_arbiter_session(tmp_path: Path) -> None:
    c = secured_cluster(tmp_path, distinct_hosts=True)
    assert c.arbiter is not None
    proxy = FaultProxy()
    try:
        # The members reach the arbiter through a proxy that can cut one member off.
        front = (c.arbiter.host, free_port(c.arbiter.host))
        proxy.add_route("arbiter", front, (c.arbiter.host, c.arbiter.port))
        cfg = c.config_path.read_text()
        c.config_path.write_text(
            cfg.replace(f'arbiter = "{c.arbiter.address}"', f'arbiter = "{front[0]}:{front[1]}"')
        )
        start_with_users(c)
        primary = wait_primary(c)
        backup = other(primary)
        c[backup].wait_until(has_arbiter_session, 30, "a session with the arbiter")
        r = cli(c, "status", user="root")
        assert r.returncode == 0, r.stderr
        assert "Automatic failover ready" in r.stdout, r.stdout

        proxy.set_rule("arbiter", c[backup].host, Rule(mode="drop"))
        proxy.cut("arbiter", c[backup].host)
        c[backup].wait_until(lambda s: not has_arbiter_session(s), 30, "the session lost")
        # The primary still has its session and its backup: only the backup's view says no.
        assert c[primary].status().get("backup_active") is True
        r = cli(c, "status", user="root")
        text = " ".join(r.stdout.split())
        assert "Automatic failover NOT possible" in text, r.stdout
        assert f"{backup} has no session with the arbiter" in text, r.stdout

        proxy.heal()
        deadline = time.monotonic() + 30
        while "Automatic failover ready" not in cli(c, "status", user="root").stdout:
            assert time.monotonic() < deadline, "status did not recover after the heal"
            time.sleep(0.5)
    finally:
        proxy.close()
        c.kill_all()

"""Canary writes through the whole pipeline, with real member processes.

A mirror writes a canary every 0.3 s. Pausing the backup (SIGSTOP) makes its
canary age, as the primary sees it, grow past ``stale_after_s`` and raises
``canary_stale`` for it on the primary, while the primary's own canaries go
on once the backup is marked inactive; resuming it (SIGCONT) brings the age
back and raises ``canary_recovered``. The backup's own age, read from the
backup itself, is small again after it resumes.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from litemirror.testing.cluster import Cluster, read_events, wait_for

FAST = {"qos_timeout_ms": 1000, "heartbeat_ms": 200}
CANARY = {"interval_s": 0.3, "stale_after_s": 1.5}


def events(data_dir: Path, kind: str, of: str | None = None) -> list[dict[str, Any]]:
    return [e for e in read_events(data_dir, kind) if of is None or e["data"].get("of") == of]


def test_canary_age_grows_when_backup_paused_and_recovers(tmp_path: Path) -> None:
    c = Cluster(
        tmp_path,
        members=(("a", "failover"), ("b", "failover")),
        mirror=FAST,
        sections={"canary": CANARY},
    )
    try:
        c.start()
        a, b = c["a"], c["b"]

        def replica_age(st: dict[str, Any]) -> float | None:
            return (st.get("canary_replica_age_s") or {}).get("b")

        def fresh(st: dict[str, Any]) -> bool:
            age = replica_age(st)
            return (st.get("canary_age_s") or 99) < 1.0 and age is not None and age < 1.0

        a.wait_until(fresh, 20, "fresh canaries on a and (seen from a) on b")
        b.wait_until(lambda st: (st.get("canary_age_s") or 99) < 1.0, 10, "fresh canary on b")
        lsn0 = a.status()["lsn"]
        assert not events(a.data_dir, "canary_stale")

        b.pause()
        try:
            st = a.wait_until(
                lambda st: (replica_age(st) or 0) > CANARY["stale_after_s"],
                15,
                "b's canary age past stale_after_s on a",
            )
            stale = wait_for(
                lambda: events(a.data_dir, "canary_stale", "b"), 10, "canary_stale of b"
            )
            assert stale[0]["severity"] == "warning"
            # The primary goes on writing canaries without its paused backup.
            a.wait_until(
                lambda st: (st.get("canary_age_s") or 99) < 1.0 and (replica_age(st) or 0) > 3,
                15,
                "a's own canary fresh while b's age keeps growing",
            )
            assert a.status()["lsn"] > lsn0 + 5  # canaries are journal records
        finally:
            b.resume()

        a.wait_until(fresh, 20, "b's canary age back to normal on a")
        rec = wait_for(lambda: events(a.data_dir, "canary_recovered", "b"), 10, "canary_recovered")
        assert rec[0]["ts"] > stale[0]["ts"]
        assert len(events(a.data_dir, "canary_stale", "b")) == 1  # once per episode
        b.wait_until(lambda st: (st.get("canary_age_s") or 99) < 1.0, 15, "fresh canary on b")
        # Whatever b noticed about itself across the pause ends recovered.
        time.sleep(0.5)
        assert len(events(b.data_dir, "canary_stale", "b")) == len(
            events(b.data_dir, "canary_recovered", "b")
        )
        assert st["writable"]
    finally:
        c.kill_all()


def test_canary_off_by_default(tmp_path: Path) -> None:
    c = Cluster(tmp_path, members=(("a", "failover"),))
    try:
        c.start()
        lsn0 = c["a"].status()["lsn"]
        time.sleep(1.0)
        st = c["a"].status()
        assert st["canary_age_s"] is None and "canary_replica_age_s" not in st
        assert st["lsn"] == lsn0  # an idle mirror without canaries writes nothing
    finally:
        c.kill_all()

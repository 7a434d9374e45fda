"""Restore drills (`litemirror backup verify`) run by a real member on its own sets."""

from __future__ import annotations

import urllib.request
from pathlib import Path
from typing import Any

import litemirror


def test_a_drill_passes_then_catches_a_damaged_copy(cluster_factory: Any, tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    c = cluster_factory(sections={"archive": {"dir": str(archive)}}, http=True)
    c.start()
    a = c["a"]
    conn = litemirror.connect(c.url())
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    conn.executemany("INSERT INTO t VALUES (?, 'x')", [(i,) for i in range(200)])
    conn.commit()
    taken = c.run_cli("backup", "--member", "a")
    assert taken.returncode == 0, taken.stdout + taken.stderr
    # Commits after the backup: the drill replays them from the archive.
    conn.execute("UPDATE t SET v = 'y' WHERE id < 50")
    conn.execute("DELETE FROM t WHERE id >= 150")
    conn.commit()
    conn.close()
    last = int(a.status()["lsn"])
    assert c.run_cli("journal", "switch").returncode == 0
    a.wait_until(lambda s: (s["archive"]["archived_lsn"] or 0) >= last, 30, "the archive")

    ok = c.run_cli("backup", "verify", "--latest", "--member", "a")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert (
        " ok: 1 database(s) restored and checked, 1 equal to this member's after the archive "
        "replay" in ok.stdout
    ), ok.stdout
    assert "not compared" not in ok.stdout, ok.stdout
    drill = a.status()["backup_drill"]
    assert drill["last"]["outcome"] == "ok"
    assert 0 <= drill["last_good_age_s"] < 60
    assert [e["kind"] for e in a.events("backup_drill_ok")] == ["backup_drill_ok"]
    assert list((a.data_dir / "backup-scratch").iterdir()) == []  # temp files removed
    with urllib.request.urlopen(f"http://{c.http['a']}/metrics", timeout=5) as r:
        metrics = r.read().decode()
    gauge = next(
        ln
        for ln in metrics.splitlines()
        if ln.startswith("litemirror_backup_drill_last_success_timestamp_seconds{")
    )
    assert float(gauge.split()[-1]) == drill["last_good"]["at"]

    # A commit the archive does not hold yet (the open segment is never archived): the
    # replay cannot be compared with the member, and the drill says so, not faking it.
    more = litemirror.connect(c.url())
    more.execute("INSERT INTO t VALUES (1000, 'z')")
    more.commit()
    more.close()
    ahead = c.run_cli("backup", "verify", "--member", "a")
    assert ahead.returncode == 0, ahead.stdout + ahead.stderr
    assert "equal to this member's" not in ahead.stdout, ahead.stdout
    assert "not compared after archive replay: this member's app is at LSN" in ahead.stdout
    assert "later commits are not archived yet" in ahead.stdout, ahead.stdout

    sets = [p for p in (a.data_dir / "backups" / c.name).iterdir() if not p.name.startswith(".")]
    stored = sets[0] / "app.db.zst"
    data = bytearray(stored.read_bytes())
    for i in range(len(data) // 2, len(data) // 2 + 8):
        data[i] ^= 0xFF
    stored.write_bytes(bytes(data))

    bad = c.run_cli("backup", "verify", "--set", sets[0].name, "--member", "a")
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "FAILED" in bad.stdout and "damaged" in bad.stdout, bad.stdout
    failed = a.events("backup_drill_failed")
    assert len(failed) == 1 and failed[0]["severity"] == "error", failed
    drill = a.status()["backup_drill"]
    assert drill["last"]["outcome"] == "failed"
    assert drill["last_good"]["set"] == sets[0].name  # the last good drill is still known
    assert list((a.data_dir / "backup-scratch").iterdir()) == []

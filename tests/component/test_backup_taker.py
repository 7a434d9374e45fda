"""Taking and listing backups through the Admin component: real databases and files in tmp."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from pathlib import Path

import apsw
import pytest
import zstandard

from litemirror.backup import manifest as mf
from litemirror.engine import meta
from litemirror.engine.checksum import table_checksums
from litemirror.errors import BackupError, ProgrammingError
from litemirror.testing.front_fakes import FrontRig


def _run(tmp_path: Path, body: Callable[[FrontRig], Awaitable[None]]) -> None:
    async def main() -> None:
        rig = FrontRig(tmp_path)
        try:
            await body(rig)
        finally:
            await rig.close()

    asyncio.run(main())


def _fill(path: Path, rows: int, lsn: int, *, bad_index: bool = False) -> None:
    conn = apsw.Connection(str(path))
    conn.execute("CREATE TABLE t(a INTEGER, b TEXT)")
    conn.execute("CREATE INDEX i ON t(a)")
    with conn:
        conn.executemany("INSERT INTO t VALUES (?, ?)", [(n, f"row {n}") for n in range(rows)])
        meta.write_lsn(conn, lsn)
    if bad_index:
        # The index now claims to cover column b, which it does not: integrity_check fails.
        conn.execute("PRAGMA writable_schema=ON")
        conn.execute("UPDATE sqlite_schema SET sql='CREATE INDEX i ON t(b)' WHERE name='i'")
    conn.close()


def _open_copy(set_dir: Path, copy: mf.DatabaseCopy, out: Path) -> apsw.Connection:
    data = (set_dir / copy.file).read_bytes()
    assert hashlib.sha256(data).hexdigest() == copy.sha256 and len(data) == copy.stored_bytes
    raw = zstandard.ZstdDecompressor().decompress(data)
    assert hashlib.sha256(raw).hexdigest() == copy.raw_sha256 and len(raw) == copy.bytes
    out.write_bytes(raw)
    return apsw.Connection(str(out))


def test_backup_of_every_database_verifies_and_lists(tmp_path: Path) -> None:
    async def body(rig: FrontRig) -> None:
        for name in ("sales", "hr"):
            await rig.admin.run("db_add", {"name": name})
        _fill(rig.registry.path("sales"), 500, 7)
        out = await rig.admin.run("backup", {})
        assert out["status"] == "verified" and out["problem"] is None
        assert [d["name"] for d in out["databases"]] == ["hr", "sales"]
        set_dir = Path(out["path"])
        assert set_dir.parent == tmp_path / "backups" / rig.config.mirror.name
        m = mf.decode((set_dir / "manifest.json").read_bytes())
        assert m.member == rig.me.name and m.lsn == rig.journal.last_lsn
        sales = next(d for d in m.databases if d.name == "sales")
        assert sales.lsn == 7 and sales.integrity == "ok"
        copy = _open_copy(set_dir, sales, tmp_path / "copy.db")
        member = apsw.Connection(str(rig.registry.path("sales")))
        assert table_checksums(copy) == table_checksums(member) == sales.tables
        assert copy.execute("SELECT count(*) FROM t").fetchall() == [(500,)]
        assert sorted(p.name for p in set_dir.iterdir()) == [
            "hr.db.zst",
            "manifest.json",
            "sales.db.zst",
        ]
        assert rig.events.kinds()[-1] == "backup_taken"
        listed = await rig.admin.run("backup_list", {})
        assert [s["set"] for s in listed["sets"]] == [set_dir.name]

    _run(tmp_path, body)


def test_a_copy_failing_integrity_check_is_kept_as_a_failed_set(tmp_path: Path) -> None:
    async def body(rig: FrontRig) -> None:
        await rig.admin.run("db_add", {"name": "sales"})
        _fill(rig.registry.path("sales"), 50, 3, bad_index=True)
        out = await rig.admin.run("backup", {"dbs": ["sales"]})
        assert out["status"] == "failed"
        assert out["problem"].startswith("sales: integrity_check of the copy says:")
        m = mf.decode((Path(out["path"]) / "manifest.json").read_bytes())
        assert m.status == "failed" and m.databases[0].integrity != "ok"
        kinds = rig.events.kinds()
        assert kinds[-1] == "backup_failed"

    _run(tmp_path, body)


def test_bad_requests_are_refused_and_write_nothing(tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (tmp_path / "backups").mkdir()
    (tmp_path / "backups" / "link").symlink_to(outside)

    async def body(rig: FrontRig) -> None:
        await rig.admin.run("db_add", {"name": "sales"})
        for to in (str(outside), "../elsewhere", "link", "/"):
            with pytest.raises(BackupError, match="outside the backup root") as info:
                await rig.admin.run("backup", {"to": to})
            assert "nothing was written" in info.value.message
        with pytest.raises(ProgrammingError, match="no database named 'nope'"):
            await rig.admin.run("backup", {"dbs": ["sales", "nope"]})
        with pytest.raises(ProgrammingError, match="dbs must be a list"):
            await rig.admin.run("backup", {"dbs": "sales"})
        assert list(outside.iterdir()) == []
        assert [p.name for p in (tmp_path / "backups").iterdir()] == ["link"]
        assert "backup_taken" not in rig.events.kinds()
        # Inside the root a sub-directory may be chosen.
        out = await rig.admin.run("backup", {"to": "nightly"})
        assert Path(out["path"]).parent == tmp_path / "backups" / "nightly" / rig.config.mirror.name

    _run(tmp_path, body)


def test_list_ignores_partial_and_manifestless_dirs(tmp_path: Path) -> None:
    async def body(rig: FrontRig) -> None:
        await rig.admin.run("db_add", {"name": "sales"})
        out = await rig.admin.run("backup", {})
        parent = Path(out["path"]).parent
        (parent / mf.partial_name("20200101T000000Z-x-lsn1")).mkdir()
        (parent / "20200101T000000Z-x-lsn2").mkdir()
        listed = await rig.admin.run("backup_list", {})
        assert [s["set"] for s in listed["sets"]] == [Path(out["path"]).name]

    _run(tmp_path, body)

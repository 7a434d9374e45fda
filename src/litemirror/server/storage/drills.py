"""Restore drills (``litemirror backup verify``): prove a backup set restores.

A drill, run by the member that holds the set, on a thread of its own (never
the event loop):

1. every database of the set is restored into a temporary directory in the
   member's data_dir with the restore code itself (:func:`litemirror.backup.
   restore.restore`: stored and raw sha256, the copy's LSN), with the keys of
   ``[backup]`` and ``[archive]``; ``PRAGMA integrity_check`` must say "ok" and
   the table checksums must equal the manifest's;
2. with an archive configured, each database is restored again with every
   archived record replayed, and compared with this member's own database
   when the member is at exactly the LSN the replay reached; otherwise the
   comparison is skipped and the outcome says why.

The outcome raises ``backup_drill_ok`` (info) or ``backup_drill_failed``
(error: the notifier sends it) and is kept in ``<data_dir>/backup-drill.json``
so the status shows the age of the last good drill across restarts. The
temporary directory is removed whatever happens.
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Executor
from pathlib import Path
from typing import Any

import apsw
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from litemirror.backup import drill as pure
from litemirror.backup.manifest import INTEGRITY_OK
from litemirror.backup.restore import read_set, restore
from litemirror.backup.sealed import Key
from litemirror.durable import write_atomic
from litemirror.engine import meta
from litemirror.engine.checksum import table_checksums
from litemirror.errors import BackupError, Error, OperationalError
from litemirror.server.ports import EventSink
from litemirror.server.storage.backups import list_sets, resolve_target

log = logging.getLogger("litemirror.member")

#: (meta LSN, table checksums) of this member's database, or None if it has none.
MemberChecksums = Callable[[str], "tuple[int, dict[str, str]] | None"]


def _read(path: Path) -> tuple[int, dict[str, str], str]:
    """(meta LSN, table checksums, integrity_check) of a restored file."""
    conn = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        integrity = "\n".join(str(r[0]) for r in conn.execute("PRAGMA integrity_check"))
        return meta.read_lsn(conn), table_checksums(conn), integrity
    finally:
        conn.close()


def run_drill(
    set_dir: Path,
    scratch: Path,
    keys: dict[str, Key],
    archive: Path | None,
    member_checksums: MemberChecksums,
) -> dict[str, Any]:
    """Restore and check every database of ``set_dir`` (blocking; see the module doc)."""
    try:
        manifest = read_set(set_dir)
    except Error as exc:
        return _failed_early(set_dir, exc.message, archive)
    problems: list[str] = []
    skipped: list[str] = []
    databases: list[dict[str, Any]] = []
    scratch.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="drill-", dir=scratch))
    try:
        for copy in manifest.databases:
            row: dict[str, Any] = {"name": copy.name, "lsn": copy.lsn, "replay": None}
            databases.append(row)
            out = work / f"{copy.name}.db"
            try:
                restore(set_dir, copy.name, out, keys=keys)
                lsn, tables, integrity = _read(out)
            except (Error, apsw.Error) as exc:
                problems.append(f"{copy.name}: {getattr(exc, 'message', exc)}")
                continue
            if integrity != INTEGRITY_OK:
                problems.append(f"{copy.name}: integrity_check says {integrity}")
            diff = pure.table_differences(copy.tables, tables)
            if diff:
                problems.append(
                    f"{copy.name}: table checksums differ from the manifest ({', '.join(diff)})"
                )
            if lsn != copy.lsn:
                problems.append(f"{copy.name}: restored at LSN {lsn}, the manifest says {copy.lsn}")
            _remove(out)  # one restored database on the disk at a time
            if archive is None:
                continue
            replayed = work / f"{copy.name}.replayed.db"
            try:
                outcome = restore(set_dir, copy.name, replayed, archive=archive, keys=keys)
                r_lsn, r_tables, r_integrity = _read(replayed)
                mine = member_checksums(copy.name)
            except (Error, apsw.Error) as exc:
                problems.append(
                    f"{copy.name}: replaying the archive failed: {getattr(exc, 'message', exc)}"
                )
                continue
            _remove(replayed)
            row["replay"] = {"lsn": r_lsn, "records": outcome.replayed, "compared": False}
            if r_integrity != INTEGRITY_OK:
                problems.append(f"{copy.name} after replay: integrity_check says {r_integrity}")
            reason = pure.replay_skip_reason(copy.name, r_lsn, None if mine is None else mine[0])
            if reason is not None or mine is None:
                row["replay"]["skipped"] = reason
                skipped.append(reason or copy.name)
                continue
            row["replay"]["compared"] = True
            diff = pure.table_differences(mine[1], r_tables)
            if diff:
                problems.append(
                    f"{copy.name}: replayed to LSN {r_lsn}, differs from this member's database "
                    f"at that LSN ({', '.join(diff)})"
                )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {
        "set": set_dir.name,
        "path": str(set_dir),
        "outcome": "failed" if problems else "ok",
        "problems": problems,
        "skipped": skipped,
        "archive": None if archive is None else str(archive),
        "databases": databases,
        "message": pure.sentence(
            set_dir.name,
            problems,
            skipped,
            len(manifest.databases),
            sum(1 for d in databases if d["replay"] and d["replay"]["compared"]),
        ),
    }


def _remove(db: Path) -> None:
    for p in (db, *(Path(f"{db}{s}") for s in ("-wal", "-shm", "-journal"))):
        p.unlink(missing_ok=True)


def _failed_early(set_dir: Path, problem: str, archive: Path | None) -> dict[str, Any]:
    return {
        "set": set_dir.name,
        "path": str(set_dir),
        "outcome": "failed",
        "problems": [problem],
        "skipped": [],
        "archive": None if archive is None else str(archive),
        "databases": [],
        "message": pure.sentence(set_dir.name, [problem], [], 0),
    }


class BackupDrill:
    """The ``backup_verify`` admin action and the last drill's outcome."""

    def __init__(
        self,
        *,
        mirror: str,
        member: str,
        root: Path,
        scratch: Path,
        state_file: Path,
        keys: dict[str, Key],
        archive: Path | None,
        member_checksums: MemberChecksums,
        executor: Executor,
        event: EventSink,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.mirror = mirror
        self.member = member
        self.root = root
        self.scratch = scratch
        self.state_file = state_file
        self.keys = keys
        self.archive = archive
        self.member_checksums = member_checksums
        self.executor = executor
        self.event = event
        self.clock = clock
        self._running = False
        self.last: dict[str, Any] | None = None
        self.last_good: dict[str, Any] | None = None
        self._load()

    def _load(self) -> None:
        try:
            kept = json.loads(self.state_file.read_text())
            self.last, self.last_good = kept.get("last"), kept.get("last_good")
        except FileNotFoundError:
            pass
        except (OSError, ValueError, AttributeError) as exc:
            log.warning("cannot read %s (%s); the last drill is not known", self.state_file, exc)

    def _choose(self, set_dir: str | None) -> Path:
        """The set to drill: ``set_dir`` (inside the backup root), or the newest verified set."""
        if set_dir:
            path = resolve_target(self.root, set_dir, self.member)
            if not path.is_dir():
                inner = resolve_target(self.root, f"{self.mirror}/{set_dir}", self.member)
                path = inner if inner.is_dir() else path
            if not path.is_dir():
                raise BackupError(
                    f"no backup set {set_dir!r} under the backup root {str(self.root)!r} of "
                    f"member {self.member}; nothing was drilled (see `litemirror backup list`)"
                )
            return path
        target = resolve_target(self.root, None, self.member) / self.mirror
        good = [s for s in list_sets(target) if s["status"] == "verified"]
        if not good:
            raise BackupError(
                f"member {self.member} holds no verified backup set in {str(target)!r}; "
                "nothing was drilled (take one with `litemirror backup`)"
            )
        return Path(good[-1]["path"])

    async def verify(self, set_dir: str | None) -> dict[str, Any]:
        """Drill ``set_dir`` (None: the newest verified set) and record the outcome."""
        if self._running:
            raise OperationalError(
                f"a restore drill is already running on member {self.member}; retry when it "
                "has finished",
                retryable=True,
            )
        self._running = True
        loop = asyncio.get_running_loop()
        try:
            path = await loop.run_in_executor(self.executor, self._choose, set_dir)
            started = self.clock()
            result = await loop.run_in_executor(
                self.executor,
                run_drill,
                path,
                self.scratch,
                self.keys,
                self.archive,
                self.member_checksums,
            )
        finally:
            self._running = False
        result = {**result, "member": self.member, "at": self.clock()}
        result["seconds"] = round(result["at"] - started, 3)
        kept = {"at": result["at"], "set": result["set"], "outcome": result["outcome"]}
        self.last = {**kept, "message": result["message"]}
        if result["outcome"] == "ok":
            self.last_good = kept
            self.event("backup_drill_ok", result["message"], "info", set=result["set"])
        else:
            self.event("backup_drill_failed", result["message"], "error", set=result["set"])
        try:
            data = json.dumps({"last": self.last, "last_good": self.last_good}).encode()
            await loop.run_in_executor(self.executor, write_atomic, self.state_file, data)
        except OSError as exc:
            log.warning("cannot keep the drill's outcome in %s: %s", self.state_file, exc)
        return result

    def status(self) -> dict[str, Any]:
        """The ``backup_drill`` block of the status."""
        good = self.last_good
        return {
            "last_good": good,
            "last_good_age_s": None if good is None else round(self.clock() - good["at"], 1),
            "last": self.last,
            "running": self._running,
        }


class DrillCollector(Collector):
    """``litemirror_backup_drill_last_success_timestamp_seconds``."""

    def __init__(self, member: str, drill: BackupDrill) -> None:
        self.member = member
        self.drill = drill

    def collect(self) -> Iterator[Metric]:
        g = GaugeMetricFamily(
            "litemirror_backup_drill_last_success_timestamp_seconds",
            "When the last restore drill that succeeded on this member finished (unix seconds).",
            labels=["member"],
        )
        if self.drill.last_good is not None:
            g.add_metric([self.member], float(self.drill.last_good["at"]))
        yield g

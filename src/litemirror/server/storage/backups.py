"""Taking and listing backup sets on this member (the shell of :mod:`litemirror.backup`).

A backup is taken by the member on its own databases: each is copied from
one read snapshot with SQLite's online backup API and verified
(:mod:`.backup_copy`), on the read threads, never on the event loop; the
writers go on meanwhile. The set is written as the format says
(:mod:`litemirror.backup.manifest`): into ``.partial-<name>``, every file
fsynced, ``manifest.json`` last, then the directory renamed into place and
its parent fsynced. A member killed midway leaves only the ``.partial-*``
directory, which listing and restore ignore and this member's next backup
removes.

Where sets go: the backup root (``[backup] dir``, default
``<data_dir>/backups``) or a directory given by the client (``--to``) that
resolves, symlinks followed, *inside* that root: a client may choose a
sub-directory but never make the member write elsewhere.

A set that fails verification is still written, with status "failed" and
the problem, and raises ``backup_failed`` (severity error; the notifier
sends it); a verified one raises ``backup_taken``. A backup that cannot be
written at all (disk full, a database removed) leaves nothing, raises
``backup_failed`` and the error.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import time
from collections.abc import Callable
from concurrent.futures import Executor
from pathlib import Path
from typing import Any

from litemirror.backup import manifest as mf
from litemirror.backup.sealed import Key, scheme_of
from litemirror.durable import fsync_dir, write_atomic
from litemirror.errors import BackupError, OperationalError, ProgrammingError
from litemirror.server.ports import EventSink
from litemirror.server.storage.backup_copy import copy_database
from litemirror.server.storage.statements import ShutdownFlag

log = logging.getLogger("litemirror.member")


def resolve_target(root: Path, to: str | None, member: str) -> Path:
    """The directory a backup goes to: ``root``, or ``to`` if it resolves inside ``root``.

    ``to`` may be relative (to ``root``) or absolute; symlinks are resolved
    before the check, so a link pointing out of the root is refused too.
    """
    base = Path(os.path.realpath(root))
    if not to:
        return base
    target = Path(os.path.realpath(base / to))  # an absolute ``to`` replaces base
    if target != base and base not in target.parents:
        raise BackupError(
            f"backup directory {to!r} resolves to {str(target)!r}, outside the backup root "
            f"{str(base)!r} of member {member}; nothing was written. Give a directory under "
            "that root, or change [backup] dir in the config"
        )
    return target


def summary(m: mf.Manifest, path: Path) -> dict[str, Any]:
    """What ``backup`` answers and ``backup list`` shows of one set."""
    return {
        "set": path.name,
        "path": str(path),
        "mirror": m.mirror,
        "member": m.member,
        "epoch": m.epoch,
        "lsn": m.lsn,
        "taken_at": m.taken_at,
        "finished_at": m.finished_at,
        "status": m.status,
        "problem": m.problem,
        "databases": [{"name": d.name, "lsn": d.lsn, "bytes": d.bytes} for d in m.databases],
        "stored_bytes": m.stored_bytes,
        "encryption": m.encryption,
    }


class BackupTaker:
    """Takes verified backup sets of this member's databases, one at a time, and lists sets."""

    def __init__(
        self,
        *,
        mirror: str,
        member: str,
        root: Path,
        names: Callable[[], list[str]],
        path_of: Callable[[str], Path],
        read_executor: Executor,
        journal_lsn: Callable[[], int],
        epoch: Callable[[], int],
        event: EventSink,
        stopping: ShutdownFlag,
        key: Key | None = None,
        scratch: Path | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``key``: seal every copy with it (``[backup] encrypt_key_file``); None: in clear.
        ``scratch``: with a key, where the plain copies are checked before they are
        sealed (a directory in the member's data_dir, never the backup root)."""
        if key is not None and scratch is None:
            raise ValueError("an encrypting BackupTaker needs a scratch directory")
        self.mirror = mirror
        self.member = member
        self.root = root
        self.names = names
        self.path_of = path_of
        self.read_executor = read_executor
        self.journal_lsn = journal_lsn
        self.epoch = epoch
        self.event = event
        self.stopping = stopping
        self.key = key
        self.scratch = scratch
        self.clock = clock
        self._running = False

    async def take(self, dbs: list[str] | None, to: str | None) -> dict[str, Any]:
        """Take a backup of ``dbs`` (None: every database, ``_system`` included)."""
        target = resolve_target(self.root, to, self.member) / self.mirror
        known = self.names()
        wanted = list(dict.fromkeys(dbs)) if dbs else sorted(known)
        missing = [d for d in wanted if d not in known]
        if missing:
            raise ProgrammingError(
                f"no database named {', '.join(map(repr, missing))} on member {self.member}; "
                f"nothing was backed up (it has: {', '.join(sorted(known)) or 'none'})"
            )
        if not wanted:
            raise ProgrammingError(f"member {self.member} holds no database; nothing to back up")
        if self._running:
            raise OperationalError(
                f"a backup is already running on member {self.member}; nothing was started, "
                "retry when it has finished",
                retryable=True,
            )
        self._running = True
        try:
            lsn, epoch = self.journal_lsn(), self.epoch()
            loop = asyncio.get_running_loop()
            try:
                m, path = await loop.run_in_executor(
                    self.read_executor, self._take, target, wanted, lsn, epoch
                )
            except Exception as exc:
                self.event(
                    "backup_failed",
                    f"backup of {', '.join(wanted)} on member {self.member} could not be "
                    f"written: {exc}; nothing was kept",
                    "error",
                    databases=wanted,
                )
                if isinstance(exc, OSError):
                    raise BackupError(
                        f"backup on member {self.member} could not be written to "
                        f"{str(target)!r}: {exc.strerror or exc}; nothing was kept"
                    ) from exc
                raise
        finally:
            self._running = False
        result = summary(m, path)
        if m.status == "verified":
            self.event(
                "backup_taken",
                f"backup {path.name} of {len(m.databases)} database(s) verified "
                f"({m.stored_bytes} bytes stored)",
                path=str(path),
                lsn=m.lsn,
            )
        else:
            self.event(
                "backup_failed",
                f"backup {path.name} failed verification: {m.problem}",
                "error",
                path=str(path),
                lsn=m.lsn,
            )
        return result

    def _take(
        self, target: Path, wanted: list[str], lsn: int, epoch: int
    ) -> tuple[mf.Manifest, Path]:
        """The whole backup, on a read thread: returns the manifest and the set's path."""
        target.mkdir(parents=True, exist_ok=True)
        self._remove_own_partials(target)
        taken_at = self.clock()
        name = mf.set_name(time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(taken_at)), self.member, lsn)
        while (target / name).exists():
            # Two backups at one LSN within one second: the next second names the new one.
            time.sleep(0.2)
            taken_at = self.clock()
            stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(taken_at))
            name = mf.set_name(stamp, self.member, lsn)
        partial = target / mf.partial_name(name)
        partial.mkdir()
        work = partial
        if self.key is not None and self.scratch is not None:
            # Plain copies never touch the backup directory: checked here, then sealed.
            shutil.rmtree(self.scratch, ignore_errors=True)  # a killed backup's leftovers
            self.scratch.mkdir(parents=True)
            work = self.scratch
        try:
            copies = []
            problems = []
            for db in wanted:
                result = copy_database(db, self.path_of(db), partial, self.stopping, self.key, work)
                copies.append(result.copy)
                if result.problem is not None:
                    problems.append(result.problem)
            m = mf.Manifest(
                mirror=self.mirror,
                member=self.member,
                epoch=epoch,
                lsn=lsn,
                taken_at=taken_at,
                finished_at=max(taken_at, self.clock()),
                status="failed" if problems else "verified",
                problem="; ".join(problems) if problems else None,
                encryption=scheme_of(self.key) if self.key is not None else None,
                databases=copies,
            )
            fsync_dir(partial)  # the copies' entries, before the manifest names them
            write_atomic(partial / mf.MANIFEST_FILE, mf.encode(m))
            final = target / name
            os.rename(partial, final)
            fsync_dir(target)
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            raise
        log.info("backup %s written (%s)", final, m.status)
        return m, final

    def _remove_own_partials(self, target: Path) -> None:
        """Leftovers of this member's killed backups (no backup of ours runs now)."""
        mark = f"-{self.member}-lsn"
        for p in target.iterdir():
            if p.name.startswith(mf.PARTIAL_PREFIX) and mark in p.name and p.is_dir():
                shutil.rmtree(p, ignore_errors=True)

    async def list_sets(self, to: str | None) -> dict[str, Any]:
        """Every complete set under the root (or ``to``) for this mirror, oldest first."""
        target = resolve_target(self.root, to, self.member) / self.mirror
        loop = asyncio.get_running_loop()
        sets = await loop.run_in_executor(self.read_executor, list_sets, target)
        return {"dir": str(target), "sets": sets}


def list_sets(target: Path) -> list[dict[str, Any]]:
    """Summaries of the sets in ``target``; an unreadable manifest is shown as such."""
    if not target.is_dir():
        return []
    found: list[dict[str, Any]] = []
    for p in sorted(target.iterdir()):
        if not (mf.is_set_name(p.name) and (p / mf.MANIFEST_FILE).is_file()):
            continue
        try:
            m = mf.decode((p / mf.MANIFEST_FILE).read_bytes(), where=str(p / mf.MANIFEST_FILE))
        except (BackupError, OSError) as exc:
            found.append(
                {"set": p.name, "path": str(p), "status": "unreadable", "problem": str(exc)}
            )
            continue
        found.append(summary(m, p))
    found.sort(key=lambda s: (s.get("taken_at", 0.0), s["set"]))
    return found

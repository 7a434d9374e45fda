"""One mirrored database on the primary: its connections and its group-commit writer.

Theory of operation
-------------------
Each database has exactly one write connection and a small pool of reader
connections (WAL: readers see the last committed snapshot and never wait
for the writer). All writes go through :meth:`Database._writer_loop`, one
asyncio task per database that runs only while there is work:

1. ``BEGIN IMMEDIATE`` opens a *group*.
2. Queued one-shot jobs run together in one worker-thread hop, each inside
   its own ``SAVEPOINT``; a job that fails is rolled back to its savepoint
   and answered at once — it is not part of the group. An interactive
   transaction runs as a savepoint too, its statements arriving one round
   trip at a time.
3. The captured changes of every job in the group become *one* journal
   record. The journal writer fsyncs it (together with other databases'
   records: one fsync for all).
4. Only then does the SQLite transaction commit, with the record's LSN
   written into the database's meta table in the same transaction, and
   the clients get their answers. So a reader never sees a change that a
   crash could take away: the journal holds it first.

If the journal append fails (disk full) the group is rolled back and every
client of the group gets the error; nothing changed anywhere. If the
SQLite commit itself fails *after* the record is durable, the record is
applied through the crash-recovery path until it succeeds, so the journal
and the database never disagree.

A job that ends with a deferred foreign-key violation is rolled back to its
savepoint before its RELEASE, like any failing job (``Capture.end_job``);
an interactive transaction whose commit fails so stays open, as SQLite
leaves it. A script that stops at a failing statement keeps what ran before
it (sqlite3's rule): its job commits with the group and its client gets the
error afterwards.

Every client job carries a :class:`~.statements.StatementGuard` (its time
limit and cancel flag), which the writer's progress handler asks while the
job runs; a stopped job fails alone like any failing job. When the stopped
statement was writing, though, SQLite rolls the whole group transaction
back: the writer sees it (the connection is back in autocommit), does not
run the rest of the hop there, and queues the group's other jobs again for
a new group (``_run_again``).

VACUUM and ``PRAGMA wal_checkpoint`` cannot run inside the group
transaction. They are queued as :class:`MaintenanceJob` and run by the
writer between two groups; VACUUM is journalled first (a record of its own),
so every member vacuums at the same point of the history.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import Executor
from pathlib import Path
from typing import Any, TypeVar

import apsw

from litemirror.engine import apply as engine_apply
from litemirror.engine import maintenance, meta
from litemirror.engine.capture import Capture, ExecResult, ScriptStopped
from litemirror.engine.ops import VACUUM_SQL, Op, SqlOp, encode_ops
from litemirror.engine.policy import Where
from litemirror.engine.sqlerrors import translate
from litemirror.errors import (
    Error,
    IntegrityError,
    InternalError,
    NotPrimaryError,
    OperationalError,
    ProgrammingError,
    TransactionAbortedError,
)
from litemirror.journal import RecordKind
from litemirror.server.storage.jobs import (
    CHECKPOINT_COLUMNS,
    BatchJob,
    Job,
    Late,
    MaintenanceJob,
    TxnCommand,
    TxnJob,
    future_of,
    maintenance_of,
)
from litemirror.server.storage.journal_writer import JournalWriter
from litemirror.server.storage.reads import (
    INLINE_SQL_MAX,
    Deferred,
    NeedsWriter,
    open_reader,
    run_read,
    run_read_inline,
)
from litemirror.server.storage.statements import PROGRESS_STEPS, StatementGuard

log = logging.getLogger("litemirror.database")

#: Acknowledgement levels, weakest first.
ACK_LEVELS = ("received", "durable", "applied")
T = TypeVar("T")
#: Groups whose journal payload is at most this size commit on the event loop
#: instead of a worker thread. Dirty pages beyond SQLite's page cache are spilled
#: while the jobs run (in the worker), so even a small payload with many dirty
#: pages (an index built by DDL) writes at most one cache's worth here.
INLINE_COMMIT_BYTES = 16 * 1024
#: How many statements too slow for an inline read are remembered per database.
_SLOW_READS_KEPT = 256


def open_writer(path: str, foreign_keys: bool = False) -> apsw.Connection:
    conn = apsw.Connection(path)
    conn.set_busy_timeout(5000)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    # Outside any transaction, where SQLite honours it: see docs/architecture.md.
    conn.execute(f"PRAGMA foreign_keys={'ON' if foreign_keys else 'OFF'}")
    # We checkpoint ourselves after commits, so the WAL stays bounded
    # without a client paying for it inside its commit.
    conn.wal_autocheckpoint(0)
    meta.ensure_meta(conn)
    return conn


class Database:
    """A database's connections and write queue. Created and closed by the registry."""

    def __init__(
        self,
        name: str,
        path: Path,
        *,
        executor: Executor,
        journal: JournalWriter,
        epoch: Callable[[], int],
        group_max: int,
        readers: int,
        txn_idle_timeout: float,
        checkpoint_pages: int,
        on_commit: Callable[[str, int], None],
        replicate: Callable[[int, str], Awaitable[None]] | None = None,
        ack: str = "durable",
        writable: Callable[[], bool] = lambda: True,
        foreign_keys: bool = False,
        read_executor: Executor | None = None,
    ) -> None:
        self.name = name
        self.path = path
        self._executor = executor
        #: Reads run here, apart from the writer's work: long reads cannot
        #: take the threads a commit needs.
        self._read_executor = read_executor or executor
        self._journal = journal
        self._epoch = epoch
        self._group_max = group_max
        self._max_readers = readers
        self._txn_idle_timeout = txn_idle_timeout
        self._checkpoint_pages = checkpoint_pages
        self._on_commit = on_commit
        self._replicate = replicate
        self._ack = ack
        self._writable = writable
        #: The database's ``[sqlite] foreign_keys`` setting, on every connection.
        self._foreign_keys = foreign_keys
        self._group_ack = ack
        #: The epoch at which the current group was allowed to start: its record
        #: carries it, and it may reach the journal only while still current.
        self._group_epoch = 0
        self._writer: apsw.Connection | None = None
        self._capture: Capture | None = None
        self._readers: list[apsw.Connection] = []
        self._reader_count = 0
        self._reader_sem = asyncio.Semaphore(readers)
        #: The running interactive transaction (one at a time: it holds the writer)
        #: has a statement on a worker thread / last finished one at this loop time.
        self._txn_busy = False
        self._txn_seen = 0.0
        #: The interactive transaction holding the writer, if any.
        self._txn: TxnJob | None = None
        #: Statements that outran the inline read budget (insertion-ordered, bounded).
        self._slow_reads: dict[str, None] = {}
        self._queue: deque[Job] = deque()
        self._loop_task: asyncio.Task[None] | None = None
        #: The guard of the client job running on the writer now (None: the
        #: member's own statements), asked by the writer's progress handler.
        self._running: StatementGuard | None = None
        self.applied_lsn = 0
        self.last_used = time.monotonic()
        self.sessions = 0
        self.commits = 0
        self.groups = 0
        self.closed = False

    # ------------------------------------------------------------ lifecycle

    async def open(self) -> None:
        self._writer = await self._run(open_writer, str(self.path), self._foreign_keys)
        # Consulted only by statements that run long (see .statements): a
        # short job never calls it.
        self._writer.set_progress_handler(self._stop_running, PROGRESS_STEPS)
        self._capture = Capture(self._writer, self._stop_running)
        self.applied_lsn = await self._run(meta.read_lsn, self._writer)

    @property
    def busy(self) -> bool:
        return bool(self._queue) or self._loop_task is not None or self.sessions > 0

    async def close(self) -> None:
        self.closed = True
        # An open transaction would hold the writer until its client's next word.
        self.abort_transaction("the database was closed (the member is shutting down)")
        if self._loop_task is not None:
            await asyncio.shield(self._loop_task)
        conns = [*self._readers]
        if self._writer is not None:
            conns.append(self._writer)
        self._readers = []
        self._writer = None

        def close_all() -> None:
            for c in conns:
                c.close()

        await self._run(close_all)

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, fn, *args)

    def _stop_running(self) -> bool:
        """The writer's progress handler: stop the running client job if its guard says so."""
        guard = self._running
        return guard is not None and guard.stop()

    # ---------------------------------------------------------------- reads

    async def read(
        self, sql: str, params: Any, guard: StatementGuard | None = None
    ) -> ExecResult | None:
        """Run a read-only statement on a reader; None if it turned out to write."""
        self.last_used = time.monotonic()
        inline = len(sql) <= INLINE_SQL_MAX and sql not in self._slow_reads
        if inline and self._readers and not self.closed:
            # Cheap reads answer from the event loop: no thread round trip.
            idle = self._readers.pop()
            try:
                return run_read_inline(idle, sql, params)
            except NeedsWriter:
                return None
            except Deferred:
                self._note_slow(sql)
            finally:
                self._readers.append(idle)
        loop = asyncio.get_running_loop()
        pool = self._read_executor
        async with self._reader_sem:
            conn = self._readers.pop() if self._readers else None
            try:
                if conn is None:
                    conn = await loop.run_in_executor(
                        pool, open_reader, str(self.path), self._foreign_keys
                    )
                try:
                    return await loop.run_in_executor(pool, run_read, conn, sql, params, guard)
                except NeedsWriter:
                    return None
            finally:
                if conn is not None:
                    if self.closed:
                        await loop.run_in_executor(pool, conn.close)
                    else:
                        self._readers.append(conn)

    def _note_slow(self, sql: str) -> None:
        """Remember a statement that outran the inline budget: it goes to a worker next time."""
        if len(self._slow_reads) >= _SLOW_READS_KEPT:
            self._slow_reads.pop(next(iter(self._slow_reads)))
        self._slow_reads[sql] = None

    # --------------------------------------------------------------- writes

    def _submit(self, job: Job) -> None:
        if self.closed:
            raise OperationalError(f"database {self.name!r} is closing; retry")
        self.last_used = time.monotonic()
        self._queue.append(job)
        if self._loop_task is None:
            self._loop_task = asyncio.get_running_loop().create_task(self._writer_loop())

    async def write(
        self,
        kind: str,
        sql: str,
        params: Any = None,
        many: Iterable[Any] | None = None,
        guard: StatementGuard | None = None,
    ) -> tuple[ExecResult, int]:
        """Run a one-shot job, committed in a group. Returns (result, commit LSN).

        ``many`` is iterated on a worker thread, and again should the job's
        group be run again (see ``_fill_group``).
        """
        fut: asyncio.Future[tuple[ExecResult, int]] = asyncio.get_running_loop().create_future()
        task = maintenance_of(sql) if kind == "exec" else None
        if task is not None:
            self._submit(MaintenanceJob(kind=task.kind, mode=task.mode, future=fut))
        else:
            self._submit(
                BatchJob(kind=kind, sql=sql, params=params, many=many, future=fut, guard=guard)
            )
        return await fut

    async def begin(self) -> TxnJob:
        """Queue an interactive transaction; returns once it holds the writer."""
        loop = asyncio.get_running_loop()
        txn = TxnJob(commands=asyncio.Queue(), started=loop.create_future())
        self._submit(txn)
        await txn.started
        return txn

    async def _writer_loop(self) -> None:
        try:
            while self._queue:
                head = self._queue[0]
                if isinstance(head, MaintenanceJob):
                    self._queue.popleft()
                    await self._maintain(head)
                else:
                    await self._one_group()
        except BaseException:
            log.exception("writer of database %s failed", self.name)
            raise
        finally:
            self._loop_task = None
            if self._queue and not self.closed:
                self._loop_task = asyncio.get_running_loop().create_task(self._writer_loop())

    async def _one_group(self) -> None:
        assert self._writer is not None
        w = self._writer
        if not self._writable():
            # The member stopped being primary while these waited: none may start.
            refusal = NotPrimaryError(
                f"the member no longer accepts writes to {self.name!r}; nothing was committed"
            )
            while self._queue:
                _fail(future_of(self._queue.popleft()), refusal)
            return
        done: list[tuple[asyncio.Future[Any] | None, Any]] = []  # answered after commit
        self._group_ack = self._ack
        self._group_epoch = self._epoch()
        try:
            if len(self._queue) > 1:
                # Under load, open the transaction in a hop of its own: the jobs
                # that arrive meanwhile join this group, so groups grow and
                # fsyncs per commit fall. Alone, a job opens it in its own hop.
                await self._run(self._open_group, [])
            await self._fill_group(done)
        except _CannotBegin as exc:
            # Nothing ran: fail what was taken for this hop and everything queued.
            err = _as_error(exc.__cause__ or exc)
            log.error("database %s: cannot open a write transaction: %s", self.name, err)
            for fut in exc.futures:
                _fail(fut, err)
            while self._queue:
                _fail(future_of(self._queue.popleft()), err)
        except BaseException as exc:
            # Unexpected: answer everyone of this group, leave the database clean.
            log.exception("database %s: group failed", self.name)
            await self._run(_rollback_quietly, w)
            failure = _as_error(exc)
            for fut, _ in done:
                _fail(fut, failure)
            if isinstance(exc, asyncio.CancelledError):
                raise

    async def _fill_group(self, done: list[tuple[asyncio.Future[Any] | None, Any]]) -> None:
        assert self._capture is not None and self._writer is not None
        cap, w = self._capture, self._writer
        started = time.monotonic()
        ops: list[Op] = []
        #: The jobs answered by ``done``, in the same order.
        ran: list[Job] = []
        not_started: list[BatchJob] = []
        count = 0
        while self._queue and count < self._group_max:
            head = self._queue[0]
            if isinstance(head, MaintenanceJob):
                break  # it runs once this group has committed
            if isinstance(head, TxnJob):
                # An interactive transaction holds the writer across round trips;
                # let it join a young group only, so it cannot make finished
                # jobs wait long for their commit.
                if count and time.monotonic() - started > 0.005:
                    break
                self._queue.popleft()
                got = await self._interactive(head)
                if got is not None:
                    fut, res, job_ops = got
                    ops.extend(job_ops)
                    done.append((fut, res))
                    ran.append(head)
                    count += 1
            else:
                batch: list[BatchJob] = []
                while (
                    self._queue
                    and isinstance(self._queue[0], BatchJob)
                    and count + len(batch) < self._group_max
                ):
                    batch.append(self._queue.popleft())  # type: ignore[arg-type]
                outcomes = await self._run(self._exec_batch, cap, batch)
                for job, outcome in zip(batch, outcomes, strict=True):
                    if outcome is None:
                        not_started.append(job)  # the group was lost before its turn
                        continue
                    res, job_ops, err = outcome
                    if err is not None:
                        _fail(job.future, err)
                    else:
                        ops.extend(job_ops)
                        done.append((job.future, res))
                        ran.append(job)
                        count += 1
            if w.get_autocommit():
                self._run_again([*ran, *not_started], done)
                return
        await self._finish_group(ops, done)

    def _run_again(
        self, jobs: list[Job], done: list[tuple[asyncio.Future[Any] | None, Any]]
    ) -> None:
        """SQLite rolled the whole group back under one job: the others start over.

        An interrupted statement that writes makes SQLite roll back the whole
        transaction, not only the statement (and so does an I/O error). The
        job whose statement it was has its error already; the others did
        nothing wrong and nothing of them was kept, so they are queued again,
        first and in their order, for a new group. An interactive transaction
        that had ended in this group cannot be run again (its client saw its
        results): its COMMIT fails as an aborted transaction, nothing of it
        committed.
        """
        log.warning(
            "database %s: SQLite rolled the group back under an interrupted job; "
            "%d job(s) of it run again",
            self.name,
            sum(1 for job in jobs if isinstance(job, BatchJob)),
        )
        for job in reversed(jobs):
            if isinstance(job, BatchJob):
                self._queue.appendleft(job)
        for (fut, _), job in zip(done, jobs, strict=False):  # jobs: done's, then more
            if isinstance(job, TxnJob):
                _fail(
                    fut,
                    TransactionAbortedError(
                        "the transaction was rolled back with its group commit: another "
                        "client's statement in the same group was interrupted, and SQLite "
                        "rolled the whole group back; nothing of it was committed, run it again"
                    ),
                )
        done.clear()

    def _open_group(self, futures: list[asyncio.Future[Any] | None]) -> None:
        """Open the group's write transaction in the first worker hop of the group.

        Folding ``BEGIN IMMEDIATE`` into the hop that runs the first job saves
        one thread round trip per group when there is no queue to gather
        (see docs/performance.md).
        """
        assert self._writer is not None
        if self._writer.get_autocommit():
            try:
                self._writer.execute("BEGIN IMMEDIATE")
            except BaseException as exc:
                raise _CannotBegin(futures) from exc

    def _exec_batch(
        self, cap: Capture, batch: list[BatchJob]
    ) -> list[tuple[ExecResult | Late | None, list[Op], Error | None] | None]:
        """Run ``batch`` in the group, each job in its savepoint: (result, ops, error) each.

        None for the jobs after one under which SQLite rolled the whole group
        back (see ``_run_again``): they must not run outside the group's
        transaction, where their RELEASE would commit them unjournalled.
        """
        w = self._writer
        assert w is not None
        self._open_group([job.future for job in batch])
        out: list[tuple[ExecResult | Late | None, list[Op], Error | None] | None] = []
        for job in batch:
            w.execute("SAVEPOINT lm_job")
            cap.begin_job(Where.SCRIPT if job.kind == "script" else Where.STATEMENT)
            guard = job.guard
            if guard is not None:
                guard.start()
                self._running = guard
            try:
                if guard is not None and guard.stop():
                    raise guard.error()  # stopped while it waited: it never starts
                res: ExecResult | Late
                if job.kind == "exec":
                    res = cap.execute(job.sql, job.params)
                elif job.kind == "many":
                    res = cap.executemany(job.sql, job.many or [])
                else:
                    try:
                        res = cap.executescript(job.sql)
                    except ScriptStopped as stopped:
                        # What ran before the failing statement stays, as in sqlite3.
                        res = Late(guard.error() if guard and guard.reason else stopped.error)
                self._running = None
                job_ops = cap.end_job()
                w.execute("RELEASE lm_job")
                out.append((res, job_ops, None))
            except BaseException as exc:
                self._running = None
                cap.abort_job()
                error = _stopped_error(guard, exc)
                if w.get_autocommit():
                    out.append((None, [], error))
                    out.extend([None] * (len(batch) - len(out)))
                    break
                w.execute("ROLLBACK TO lm_job; RELEASE lm_job")
                out.append((None, [], error))
            finally:
                if guard is not None:
                    guard.finish()
        return out

    async def _interactive(
        self, txn: TxnJob
    ) -> tuple[asyncio.Future[Any] | None, Any, list[Op]] | None:
        assert self._writer is not None and self._capture is not None
        cap, w = self._capture, self._writer

        def start() -> None:
            self._open_group([txn.started])
            w.execute("SAVEPOINT lm_txn")
            cap.begin_job(Where.TRANSACTION)

        def stop(commit: bool) -> list[Op]:
            if commit:
                job_ops = cap.end_job()
                w.execute("RELEASE lm_txn")
                return job_ops
            cap.abort_job()
            if not w.get_autocommit():  # else SQLite rolled the whole group back already
                w.execute("ROLLBACK TO lm_txn; RELEASE lm_txn")
            return []

        await self._run(start)
        loop = asyncio.get_running_loop()
        self._txn_seen = loop.time()
        txn.started.set_result(None)
        self._txn = txn
        try:
            return await self._interactive_loop(txn, stop)
        finally:
            self._txn = None
            # A command queued after the transaction ended (a commit racing an
            # abort) would otherwise wait forever.
            while not txn.commands.empty():
                late = txn.commands.get_nowait()
                _fail(
                    late.future,
                    TransactionAbortedError(txn.abort_reason or "the transaction has ended"),
                )

    def abort_transaction(self, reason: str) -> None:
        """Roll back the open interactive transaction, if any (the member stops writing).

        Its client gets TransactionAbortedError (retryable) with ``reason`` on
        its next statement or commit; a statement running now finishes first.
        """
        txn = self._txn
        if txn is not None and not txn.finished:
            txn.abort_reason = reason
            txn.finished = True  # no new statement or commit gets in from here
            txn.commands.put_nowait(TxnCommand(kind="abort", sql=reason))

    async def _interactive_loop(
        self, txn: TxnJob, stop: Callable[[bool], list[Op]]
    ) -> tuple[asyncio.Future[Any] | None, Any, list[Op]] | None:
        assert self._capture is not None
        cap = self._capture
        loop = asyncio.get_running_loop()
        while True:
            try:
                # Statements arrive through txn_execute(); only the end of the
                # transaction comes through the queue. asyncio.timeout arms one
                # timer, where wait_for would also wrap get() in a new task.
                # A statement still running counts as activity: look again later.
                since = loop.time() if self._txn_busy else self._txn_seen
                async with asyncio.timeout_at(since + self._txn_idle_timeout):
                    cmd: TxnCommand = await txn.commands.get()
            except TimeoutError:
                if self._txn_busy or loop.time() < self._txn_seen + self._txn_idle_timeout:
                    continue  # a statement is running or ran since: not idle
                txn.finished = True
                txn.abort_reason = (
                    f"transaction idle for more than {self._txn_idle_timeout:g}s was rolled back"
                )
                await self._run(stop, False)
                log.warning("database %s: %s", self.name, txn.abort_reason)
                return None
            if cmd.kind == "abort":
                txn.finished = True
                while self._txn_busy:  # let a running statement finish first
                    await asyncio.sleep(0.005)
                await self._run(stop, False)
                log.warning("database %s: %s", self.name, cmd.sql)
                return None
            if cmd.kind in ("exec", "many"):
                try:
                    res = await self.txn_execute(txn, cmd.kind, cmd.sql, cmd.params, cmd.many)
                except Error as exc:
                    _fail(cmd.future, exc)
                else:
                    _ok(cmd.future, res)
                continue
            txn.finished = True
            if cmd.kind == "commit":
                if cmd.ack is not None and ACK_LEVELS.index(cmd.ack) > ACK_LEVELS.index(
                    self._group_ack
                ):
                    self._group_ack = cmd.ack
                try:
                    await self._run(cap.check_deferred)
                except IntegrityError as exc:
                    # A deferred foreign-key violation: as in SQLite, the COMMIT
                    # fails and the transaction stays open for the client to
                    # fix or roll back.
                    txn.finished = False
                    self._txn_seen = loop.time()
                    _fail(cmd.future, exc)
                    continue
                try:
                    job_ops = await self._run(stop, True)
                except BaseException as exc:
                    await self._run(stop, False)
                    _fail(cmd.future, _as_error(exc))
                    return None
                return cmd.future, None, job_ops
            await self._run(stop, False)
            _ok(cmd.future, 0)
            return None

    async def txn_execute(
        self,
        txn: TxnJob,
        kind: str,
        sql: str,
        params: Any,
        many: Iterable[Any] | None,
        guard: StatementGuard | None = None,
    ) -> ExecResult:
        """Run one statement of ``txn``, which holds the writer, straight from the session.

        The writer task is parked in ``_interactive`` until the transaction
        ends; handing each statement to it through the command queue would
        cost two more event-loop turns per statement for nothing. The caller
        sends one statement at a time, and ``_txn_busy`` keeps the idle
        timeout from rolling back under a running statement.

        A statement that writes and is stopped by its ``guard`` ends the
        transaction, as in SQLite: SQLite rolls the whole transaction back
        (see ``_run_again``). A stopped read leaves the transaction open.
        """
        assert self._capture is not None and self._writer is not None
        if txn.finished or self._txn_busy:
            raise TransactionAbortedError(txn.abort_reason or "the transaction was rolled back")
        cap, w = self._capture, self._writer
        loop = asyncio.get_running_loop()

        def run() -> ExecResult:
            if guard is not None:
                guard.start()
                self._running = guard
            try:
                if guard is not None and guard.stop():
                    raise guard.error()  # stopped while it waited: it never starts
                if kind == "many":
                    return cap.executemany(sql, many or [])
                return cap.execute(sql, params)
            finally:
                self._running = None
                if guard is not None:
                    guard.finish()
                # From the worker, once the connection is free again, even if
                # the awaiting session was cancelled meanwhile.
                loop.call_soon_threadsafe(self._txn_statement_done)

        self._txn_busy = True
        try:
            return await asyncio.shield(loop.run_in_executor(self._executor, run))
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            error = _stopped_error(guard, exc)
            if w.get_autocommit() and not txn.finished:
                # SQLite rolled the group back with this statement: the
                # transaction is over (its client sees it no longer open).
                txn.finished = True
                txn.abort_reason = f"the transaction was rolled back: {error.message}"
                txn.commands.put_nowait(TxnCommand(kind="abort", sql=txn.abort_reason))
            raise error from exc

    def _txn_statement_done(self) -> None:
        self._txn_busy = False
        self._txn_seen = asyncio.get_running_loop().time()

    async def _finish_group(
        self, ops: list[Op], done: list[tuple[asyncio.Future[Any] | None, Any]]
    ) -> None:
        assert self._writer is not None
        w = self._writer
        if w.get_autocommit():
            # SQLite ended the group's transaction on its own (an I/O error
            # rolls the whole transaction back): whatever the jobs captured is
            # gone from the database, so it must not reach the journal either.
            err: Error = OperationalError(
                f"database {self.name!r}: SQLite rolled the write transaction back "
                "(see the member log); nothing of it was committed; retry"
            )
            for fut, _ in done:
                _fail(fut, err)
            return
        if not ops:
            # Nothing changed (reads in a transaction, no-op updates): no record.
            # Committing a transaction that wrote nothing is cheap: run it here.
            w.execute("COMMIT")
            for fut, res in done:
                _answer(fut, res, 0)
            return
        payload = encode_ops(ops)
        if not self._writable() or self._epoch() != self._group_epoch:
            # Fencing: the member stopped being the primary of this epoch while the
            # group ran (an interactive transaction waits on its client). Its
            # changes must not reach the journal — stamped with a newer epoch
            # they would even pass for the new primary's.
            await self._run(w.execute, "ROLLBACK")
            err = NotPrimaryError(
                f"the member stopped accepting writes to {self.name!r} at epoch "
                f"{self._group_epoch} before this commit; nothing was committed"
            )
            for fut, _ in done:
                _fail(fut, err)
            return
        try:
            # The check above and the append below run in one step of the event
            # loop: nothing can depose the member in between.
            record = await self._journal.append(
                self._group_epoch, RecordKind.CHANGES, self.name, payload
            )
        except BaseException as exc:
            await self._run(w.execute, "ROLLBACK")
            err = _as_error(exc)
            for fut, _ in done:
                _fail(fut, err)
            return

        if self._replicate is not None:
            # Synchronous mirroring: the backup must hold the record at the
            # acknowledgement level before anyone (reader or client) sees it.
            try:
                await self._replicate(record.lsn, self._group_ack)
            except BaseException as exc:
                # Deposed while waiting: the record never reached the member that
                # took over, so it is not committed. It stays in this member's
                # journal until the rejoin rolls it back (and keeps it).
                await self._run(_rollback_quietly, w)
                err = _as_error(exc)
                for fut, _ in done:
                    _fail(fut, err)
                if isinstance(exc, asyncio.CancelledError):
                    raise
                return

        def commit() -> None:
            meta.write_lsn(w, record.lsn)
            w.execute("COMMIT")

        try:
            if len(payload) <= INLINE_COMMIT_BYTES and not self._queue:
                # A small group's COMMIT writes a few pages to the WAL and does
                # not fsync (synchronous=NORMAL; the journal is the durable
                # copy). That costs less than a round trip to a worker thread,
                # and the writer connection is not in use anywhere else now.
                # Under load (jobs already waiting) the worker does it instead,
                # so the event loop keeps reading requests meanwhile.
                commit()
            else:
                await self._run(commit)
        except BaseException as exc:
            # The record is durable: the change *is* committed. Make the
            # database catch up through the recovery path before answering.
            await self._through_recovery("commit", record.lsn, payload, exc)
        self._settled(record.lsn, len(done))
        for fut, res in done:
            _answer(fut, res, record.lsn)
        await self._maybe_checkpoint()

    async def _through_recovery(
        self, what: str, lsn: int, payload: bytes, exc: BaseException
    ) -> None:
        """``what`` failed after record ``lsn`` was durable: the change *is* committed,
        so the database catches up through the recovery path before anyone is answered."""
        log.error(
            "database %s: %s of durable journal record %d failed (%s); applying it through "
            "recovery",
            self.name,
            what,
            lsn,
            exc,
        )
        assert self._writer is not None
        await self._run(_rollback_quietly, self._writer)
        await self._apply_until_done(lsn, payload)

    def _settled(self, lsn: int, commits: int) -> None:
        """Record ``lsn`` (``commits`` client commits) is in the database."""
        self.applied_lsn = lsn
        self.groups += 1
        self.commits += commits
        self._on_commit(self.name, lsn)

    async def _maintain(self, job: MaintenanceJob) -> None:
        """Run VACUUM or a checkpoint between groups (the writer is in autocommit)."""
        assert self._writer is not None
        try:
            if not self._writable():
                raise NotPrimaryError(f"the member no longer accepts writes to {self.name!r}")
            if job.kind == "checkpoint":
                rows = await self._run(maintenance.checkpoint, self._writer, job.mode)
                _ok(job.future, (ExecResult(CHECKPOINT_COLUMNS, rows, -1, 0), 0))
            else:
                _ok(job.future, (ExecResult(None, [], -1, 0), await self._vacuum()))
        except BaseException as exc:
            _fail(job.future, _as_error(exc))
            if isinstance(exc, asyncio.CancelledError):
                raise

    async def _vacuum(self) -> int:
        """Journal a VACUUM record, wait for the backup like a group, then VACUUM."""
        assert self._writer is not None
        w = self._writer
        epoch = self._epoch()
        payload = encode_ops([SqlOp(VACUUM_SQL)])
        # Checked and appended in one step of the event loop, as a group is.
        record = await self._journal.append(epoch, RecordKind.CHANGES, self.name, payload)
        if self._replicate is not None:
            # Deposed while waiting: the record stays in this member's journal
            # (never applied here) until the rejoin rolls it back.
            await self._replicate(record.lsn, self._ack)
        try:
            await self._run(maintenance.vacuum, w, record.lsn)
        except BaseException as exc:
            await self._through_recovery("VACUUM", record.lsn, payload, exc)
        self._settled(record.lsn, 1)
        # VACUUM wrote the whole database into the WAL: move it back now.
        await self._run(maintenance.checkpoint, w, "PASSIVE")
        return record.lsn

    async def _apply_until_done(self, lsn: int, payload: bytes) -> None:
        delay = 0.05
        while True:
            try:
                conn = await self._run(engine_apply.open_apply_connection, str(self.path))
                try:
                    await self._run(engine_apply.apply_record, conn, lsn, payload)
                finally:
                    await self._run(conn.close)
                return
            except BaseException as exc:
                log.error(
                    "database %s: applying record %d failed (%s); retrying in %.2fs",
                    self.name,
                    lsn,
                    exc,
                    delay,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    async def _maybe_checkpoint(self) -> None:
        if self.groups % 64 != 0 or self._writer is None:
            return
        w = self._writer

        def ckpt() -> None:
            try:
                w.wal_checkpoint(mode=apsw.SQLITE_CHECKPOINT_PASSIVE)
            except apsw.Error as exc:
                log.warning("database %s: checkpoint failed: %s", self.name, exc)

        await self._run(ckpt)


class _CannotBegin(Exception):
    """BEGIN IMMEDIATE failed; ``futures`` are the jobs taken for that hop."""

    def __init__(self, futures: list[asyncio.Future[Any] | None]) -> None:
        super().__init__("cannot open a write transaction")
        self.futures = futures


def _answer(fut: asyncio.Future[Any] | None, res: Any, lsn: int) -> None:
    """Answer a job of a group that committed at ``lsn`` (0: nothing to record)."""
    if isinstance(res, Late):
        _fail(fut, res.error)
    else:
        _ok(fut, (res, lsn) if res is not None else lsn)


def _stopped_error(guard: StatementGuard | None, exc: BaseException) -> Error:
    """The error of a job that failed: the guard's when the guard stopped it."""
    if guard is not None and guard.reason is not None:
        return guard.error()
    return _as_error(exc)


def _rollback_quietly(conn: apsw.Connection) -> None:
    try:
        if not conn.get_autocommit():
            conn.execute("ROLLBACK")
    except apsw.Error:
        pass


def _as_error(exc: BaseException) -> Error:
    if isinstance(exc, Error):
        return exc
    if isinstance(exc, (apsw.Error, KeyError, TypeError, OverflowError)):
        return translate(exc)
    if isinstance(exc, ValueError):
        return ProgrammingError(str(exc))
    return InternalError(f"unexpected {type(exc).__name__}: {exc}")


def _ok(fut: asyncio.Future[Any] | None, value: Any) -> None:
    if fut is not None and not fut.done():
        fut.set_result(value)


def _fail(fut: asyncio.Future[Any] | None, exc: BaseException) -> None:
    if fut is not None and not fut.done():
        fut.set_exception(exc)

"""The member process's lifecycle: ``litemirror serve --config F --member NAME``.

:func:`~.wiring.build_member` builds every component (opening the journal,
truncating a torn tail, replaying what the databases miss up to the commit
point); this class then runs them. Start-up: decide the role (the agent, or
the start decision without one), listen for clients, members and the CLI,
serve HTTP, start the notifier, the canary and the housekeeping. Shutdown
(SIGTERM/SIGINT) stops accepting, stops running statements, lets running
groups finish, closes the databases and the journal, and records a clean
shutdown with the horizon and the commit point.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from litemirror.server.ha.starting import Starting
from litemirror.server.node.housekeeping import Housekeeping
from litemirror.server.node.parts import Parts
from litemirror.server.storage.statements import ShutdownFlag

log = logging.getLogger("litemirror.member")


class BackgroundTasks:
    """Keeps a reference to each background task until it ends (asyncio keeps only weak ones)."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def keep(self, task: asyncio.Task[Any]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        self.keep(asyncio.get_running_loop().create_task(coro))


class MemberServer:
    def __init__(
        self,
        *,
        parts: Parts,
        listen: Callable[[str, int], Awaitable[asyncio.AbstractServer]],
        start_http: Callable[[], Awaitable[asyncio.AbstractServer | None]],
        starting: Starting | None,
        housekeeping: Housekeeping,
        tasks: BackgroundTasks,
        stop: asyncio.Event,
        stopping: ShutdownFlag,
    ) -> None:
        """``starting``: the start decision, for a member that takes its role without
        a failover agent (None: the agent decides)."""
        self.parts = parts
        self._listen = listen
        self._start_http = start_http
        self._starting = starting
        self._housekeeping = housekeeping
        self._tasks = tasks
        self._stop = stop
        self._stopping = stopping
        self._server: asyncio.AbstractServer | None = None
        self._http: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        p = self.parts
        p.transitions.start_deciding()
        # Listen first: the other failover member may need our status to
        # decide its own role, and operators want `status` to answer.
        self._server = await self._listen(p.me.host, p.me.port)
        self._http = await self._start_http()
        p.notifier.start()
        p.canary.start()
        self._tasks.spawn(self._housekeeping.run(self._stop))
        self._tasks.spawn(p.loop_lag.run(self._stop))
        if p.backup_scheduler is not None:
            self._tasks.spawn(p.backup_scheduler.run(self._stop))
        if p.agent is not None:
            self._tasks.spawn(p.agent.run())
        if self._starting is not None:
            self._tasks.spawn(self._starting.take_role())

    async def serve_forever(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop.set)
        loop.add_signal_handler(signal.SIGHUP, self.parts.config.on_sighup)
        await self._stop.wait()
        name = self.parts.me.name
        log.info("member %s shutting down", name)
        bound = self.parts.config().server.shutdown_timeout_s
        # A thread, not a task: it fires even if the loop itself is stuck.
        watchdog = threading.Timer(bound, _exit_now, (name, bound))
        watchdog.daemon = True
        watchdog.start()
        await self.shutdown()
        watchdog.cancel()

    async def shutdown(self) -> None:
        p = self.parts
        self._stop.set()
        # Running client statements stop at SQLite's next progress call.
        self._stopping.set = True
        if self._server is not None:
            self._server.close()
        if self._http is not None:
            self._http.close()
        await p.canary.stop()
        await p.notifier.close()
        await p.registry.close_all()
        p.writer.close()
        p.journal.close()
        p.events.close()
        st = p.state_file.current()
        st.horizon = p.horizon.current()
        st.confirmed = p.position.confirmed_lsn()
        st.clean_shutdown = True
        p.state_file.save_now()
        p.executor.shutdown(wait=True)
        p.read_executor.shutdown(wait=True)
        p.decode_executor.shutdown(wait=False, cancel_futures=True)


def _exit_now(member: str, bound: float) -> None:
    """The shutdown outran server.shutdown_timeout_s: leave now (the journal is durable).

    Without the clean-shutdown mark the next start replays the journal's
    tail, as after a crash; nothing acknowledged is lost.
    """
    log.error(
        "member %s did not shut down within server.shutdown_timeout_s (%g s); exiting now",
        member,
        bound,
    )
    logging.shutdown()
    os._exit(3)

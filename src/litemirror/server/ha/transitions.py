"""Role changes a member carries out for its failover agent.

Each method is one action of a failover decision (see
:mod:`litemirror.failover`): record the epoch, prepare to lead, open or stop
writes, follow a new primary. They are written so that the journal always
has exactly one writer: the journal writer thread while primary, the
receiver's journal thread while following, never both.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

import msgspec

from litemirror.errors import CommitUnknownError, OperationalError
from litemirror.failover import State
from litemirror.journal import RecordKind
from litemirror.server.storage.member_state import save_state
from litemirror.server.storage.recovery import recover

if TYPE_CHECKING:
    from litemirror.server.node.member import MemberServer

log = logging.getLogger("litemirror.transitions")

HOLDING = {State.PRIMARY, State.PRIMARY_ALONE, State.IN_TROUBLE, State.SWITCHING_OVER}
FOLLOWING = {State.BACKUP_ACTIVE, State.BACKUP_CATCHING_UP, State.FENCED}


class Transitions:
    """A member's role changes; ``member.roles`` is the one instance."""

    def __init__(self, member: MemberServer) -> None:
        self.m = member

    async def record_epoch(self, epoch: int, holder: str | None) -> None:
        self.m.epoch = max(self.m.epoch, epoch)
        self.m.state_file.epoch = epoch
        self.m.state_file.last_primary = holder
        await asyncio.get_running_loop().run_in_executor(
            self.m.executor, save_state, self.m.me.data_dir, self.m.state_file
        )

    async def prepare_to_lead(self, epoch: int) -> None:
        ok = await self.run_hook("can_start_become_primary", epoch)
        if not ok:
            raise OperationalError("hook can_start_become_primary said no")
        ok = await self.run_hook("check_become_primary_ok", epoch)
        if not ok:
            raise OperationalError("hook check_become_primary_ok said no")
        await self.take_vip()

    async def open_writes(self, epoch: int, wait_for_backup: bool) -> None:
        loop = asyncio.get_running_loop()
        m = self.m
        how = "waiting for" if wait_for_backup else "without"
        if (
            m.role == "primary"
            and m.receiver is None
            and m.epoch == epoch
            and m.journal.last_epoch >= epoch
        ):
            # Already leading at this epoch: only whether commits wait changes
            # (after a restart, the end of the journal is applied first).
            await m.apply_journal_tail()
            await m.hub.set_backup_active(
                wait_for_backup, f"commits at epoch {epoch} now go on {how} the backup"
            )
            m.writable = True
            m.state = "active"
            return
        rcv = m.receiver
        horizon = rcv.applied if rcv is not None else m.current_horizon()
        await self._stop_following()
        # Every durable record must be in the databases before anyone writes: this
        # member's journal is the mirror's history from here on.
        res = await loop.run_in_executor(m.executor, recover, m.journal, m.registry, horizon)
        if res.replayed:
            log.info("applied %d journal record(s) before opening writes", res.replayed)
        # Every record now in the journal is in its database.
        m._seen_lsn = max(m._seen_lsn, m.journal.last_lsn)
        self.m.epoch = epoch
        self.m.hub.clear_abort()
        if self.m.journal.last_epoch < epoch:
            payload = msgspec.msgpack.encode({"epoch_start": epoch, "member": self.m.me.name})
            await self.m.jw.append(epoch, RecordKind.MARKER, "", payload)
        for name in self.m.config.mirror.databases:
            if not self.m.registry.exists(name):
                await self.m.create_database(name)
        await self.m.hub.set_backup_active(wait_for_backup, f"opening writes at epoch {epoch}")
        self.m.role = "primary"
        self.m.state = "active"
        self.m.writable = True
        self.m.led = True
        self.m.state_file.last_role = "primary"
        self.m.state_file.last_primary = self.m.me.name
        await loop.run_in_executor(
            self.m.executor, save_state, self.m.me.data_dir, self.m.state_file
        )
        self.m.event(
            "writes_open",
            f"member {self.m.me.name} accepts writes at epoch {epoch} "
            f"({'waiting for' if wait_for_backup else 'without'} the backup)",
        )

    async def stop_writes(self, deposed: bool, primary: str | None) -> None:
        self.m.writable = False
        self._abort_transactions()
        if deposed:
            addr = self._address_of(primary)
            self.m.state = "fenced"
            # Deposed: nothing more commits here; what waits for the backup is aborted.
            self.m.hub.hold()
            await self.m.hub.abort_waiters(
                CommitUnknownError(
                    f"member {self.m.me.name} was deposed ({primary} holds a newer epoch) "
                    "while this commit waited for the backup; the new primary may hold it: "
                    "check before running it again",
                    primary=addr,
                )
            )
            await self.release_vip()
        else:
            self.m.state = "in trouble"

    async def follow_primary(self, primary: str, epoch: int) -> None:
        was_primary = self.m.led
        self.m.led = False
        self.m.writable = False
        self.m.role = "backup" if self.m.me.kind == "failover" else self.m.me.kind
        self.m.epoch = max(self.m.epoch, epoch)
        self._abort_transactions()
        if was_primary:
            horizon = self.m.current_horizon()
            await self.m.hub.abort_waiters(
                CommitUnknownError(
                    f"member {self.m.me.name} now follows {primary}; the new primary may "
                    "hold this commit: check before running it again",
                    primary=self._address_of(primary),
                )
            )
            self.m.hub.drop_all()
            await self.m.registry.close_all()
            await self.m.jw.call(lambda _j: None)  # the journal writer is idle from here on
            # Commits cut short above are in the journal but not in the databases.
            # Only those the backup acknowledged are committed; the rest stay in the
            # journal, invisible, until the new primary's start plan says whether it
            # holds them (then they are applied) or not (then they are rolled back
            # without any reader ever having seen them).
            await asyncio.get_running_loop().run_in_executor(
                self.m.executor,
                recover,
                self.m.journal,
                self.m.registry,
                horizon,
                self.m.hub.committed_lsn,
            )
        # A member that held the virtual IP before a crash still has it on its
        # interface (the kernel outlived the process): a follower never holds it.
        await self.release_vip()
        self.m.state_file.last_role = self.m.role
        self.m.state_file.last_primary = primary
        await asyncio.get_running_loop().run_in_executor(
            self.m.executor, save_state, self.m.me.data_dir, self.m.state_file
        )
        if self.m.receiver is None:
            self.m.state = "connecting"
            self.m.receiver = self.m.new_receiver(self.m.hub.committed_lsn)
            self.m._receiver_task = asyncio.get_running_loop().create_task(self.m.receiver.run())
        self.m.event("following", f"member {self.m.me.name} follows {primary} at epoch {epoch}")

    async def _stop_following(self) -> None:
        rcv = self.m.receiver
        if rcv is None:
            return
        task = self.m._receiver_task
        self.m.receiver = None
        self.m._receiver_task = None
        if task is not None:
            task.cancel()
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        # Let an append already handed to the receiver's journal thread finish.
        await asyncio.get_running_loop().run_in_executor(rcv.journal_thread, time.sleep, 0)
        rcv.journal_thread.shutdown(wait=True)

    def _address_of(self, name: str | None) -> str | None:
        for mb in self.m.config.members:
            if mb.name == name:
                return mb.address
        return None

    def failover_state_changed(self, state: State) -> None:
        if state in HOLDING:
            self.m.role = "primary"
            self.m.state = {
                State.PRIMARY: "active",
                State.PRIMARY_ALONE: "active (alone)",
                State.IN_TROUBLE: "in trouble",
                State.SWITCHING_OVER: "switching over",
            }[state]
            self.m.writable = state in (State.PRIMARY, State.PRIMARY_ALONE) and self.m.writable
        elif state in FOLLOWING:
            self.m.role = "backup"
            self.m.writable = False
            if state is State.FENCED:
                self.m.state = "fenced"
        elif state is State.TAKING_OVER:
            self.m.writable = False
            self.m.state = "taking over"
        elif state is State.WAITING:
            self.m.writable = False
            self.m.role = "waiting"
            self.m.state = "waiting"
        if state is State.IN_TROUBLE or state is State.SWITCHING_OVER:
            self.m.writable = False
        if not self.m.writable:
            self._abort_transactions()

    def _abort_transactions(self) -> None:
        """Open transactions cannot commit any more: roll them back now, so they hold
        neither the writers (a switchover or rejoin would wait for them) nor their client."""
        registry = getattr(self.m, "registry", None)
        if registry is not None:
            registry.abort_transactions(
                f"the transaction was rolled back: member {self.m.me.name} stopped "
                f"accepting writes ({self.m.state}); retry it on the primary"
            )

    def may_acknowledge(self) -> bool:
        return self.m.agent is None or self.m.agent.may_acknowledge()

    def newer_epoch_seen(self, epoch: int, holder: str) -> None:
        if self.m.agent is not None:
            self.m.agent.newer_epoch(epoch, holder)

    async def run_hook(self, point: str, epoch: int, error: str | None = None) -> bool:
        m = self.m
        result = await m.hooks.run(
            point,
            mirror=m.config.mirror.name,
            member=m.me.name,
            epoch=epoch,
            error=error,
            extra={"previous_primary": m.state_file.last_primary},
        )
        return bool(result.ok)

    def notify_hook(self, point: str, epoch: int, error: str | None = None) -> None:
        # Notify hooks never block the member.
        task = asyncio.get_running_loop().create_task(self.run_hook(point, epoch, error))
        self.m.spawned(task)

    async def take_vip(self) -> None:
        m = self.m
        if m.vip is None:
            return
        await m.vip.acquire()
        # Clients that know only the virtual IP reach the primary on it.
        ip = m.vip.address.split("/")[0]
        if m._vip_server is None and ip != m.me.host:
            m._vip_server = await m.listen(ip, m.me.port)
        m.event("vip", f"took the virtual IP {m.vip.address} on {m.me.vip_interface}")

    async def release_vip(self) -> None:
        m = self.m
        if m.vip is None:
            return
        if m._vip_server is not None:
            m._vip_server.close()
            m._vip_server = None
        try:
            if not await m.vip.held():
                return
            await m.vip.release()
            m.event("vip", f"released the virtual IP {m.vip.address}")
        except Exception as exc:
            m.event("vip", f"could not release the virtual IP: {exc}", "error")

"""Role changes a member carries out for its failover agent (and its start decision).

Each method is one action of a failover decision (see
:mod:`litemirror.failover`): record the epoch, prepare to lead, open or stop
writes, follow a new primary. They are written so that the journal always
has exactly one writer: the journal writer thread while primary, the
receiver's journal thread while following, never both.

This is also the one writer of the member's role snapshot
(:class:`~litemirror.server.role.RoleCell`): role, state word, epoch,
writability and reason change only through the methods here, so what
``status`` shows and what the commit path obeys cannot disagree. What
leading and following do to storage, the hub and the receiver goes through
the ports of :mod:`.ports`; the receiver link and the virtual IP's listener
are owned here, not by the member.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any

from litemirror.config import Member
from litemirror.errors import CommitUnknownError, OperationalError
from litemirror.failover import State
from litemirror.failover.states import Role, bearing
from litemirror.server.ha.ports import HookRunner, PrimaryDuties, ReplicaLink, StateFile, VipActions
from litemirror.server.ports import EventSink
from litemirror.server.role import RoleCell, RoleSnapshot

log = logging.getLogger("litemirror.transitions")


class Transitions:
    """A member's role changes; ``member.transitions`` is the one instance."""

    def __init__(
        self,
        *,
        me: Member,
        mirror: str,
        members: Callable[[], Sequence[Member]],
        cell: RoleCell,
        duties: PrimaryDuties,
        replica: ReplicaLink,
        state_file: StateFile,
        hooks: HookRunner,
        vip: VipActions | None,
        event: EventSink,
        current_horizon: Callable[[], int],
        keep: Callable[[asyncio.Task[Any]], None],
    ) -> None:
        self.me = me
        self.mirror = mirror
        #: The configured members now (a config reload may change them).
        self.members = members
        self.cell = cell
        self.duties = duties
        self.replica = replica
        self.state_file = state_file
        self.hooks = hooks
        self.vip = vip
        self.event = event
        self.current_horizon = current_horizon
        #: Keeps a background task referenced until it ends.
        self.keep = keep
        #: This member has led (written as primary) since it started.
        self.led = False

    @property
    def now(self) -> RoleSnapshot:
        return self.cell()

    # ------------------------------------------------- snapshot, outside a decision

    def note_epoch(self, epoch: int) -> None:
        """The epoch this member knows of (read at start, or heard from the primary)."""
        self.cell.set(epoch=epoch)

    def note_reason(self, reason: str) -> None:
        """Why the member is in its role (a failover decision, the start decision, ...)."""
        self.cell.set(reason=reason)

    def start_deciding(self) -> None:
        """At start, once the member can answer: its role is not decided yet."""
        self.cell.set(role=Role.WAITING, state="deciding role")

    async def take_start_role(self, role: Role, reason: str) -> None:
        """Without a failover agent: become what the start decision said (primary or a
        follower of the primary it will find)."""
        st = self.state_file.current()
        st.last_role = role.value
        if role is Role.PRIMARY:
            st.last_primary = self.me.name
        await self.state_file.save()
        if role is Role.PRIMARY:
            # Without an arbiter this member leads only when its peer confirmed that
            # no failover happened: its whole journal is the mirror's history.
            await self.duties.apply_journal_tail()
            await self.duties.set_backup_active(False, "the fixed primary starts without a backup")
            await self.duties.create_missing_databases()
            self.cell.set(role=role, state="active", writable=True, reason=reason)
            self.led = True
        else:
            # A member that held the virtual IP before a crash still has it on its
            # interface (the kernel outlived the process): a follower never holds it.
            await self.release_vip()
            self.cell.set(role=role, state="connecting", reason=reason)
            self.replica.start()
        self.event("role", f"member {self.me.name} is {role}: {reason}")

    # ------------------------------------------------------------ actions

    async def record_epoch(self, epoch: int, holder: str | None) -> None:
        self.cell.set(epoch=max(self.now.epoch, epoch))
        st = self.state_file.current()
        st.epoch = epoch
        st.last_primary = holder
        await self.state_file.save()

    async def prepare_to_lead(self, epoch: int) -> None:
        ok = await self.run_hook("can_start_become_primary", epoch)
        if not ok:
            raise OperationalError("hook can_start_become_primary said no")
        ok = await self.run_hook("check_become_primary_ok", epoch)
        if not ok:
            raise OperationalError("hook check_become_primary_ok said no")
        await self.take_vip()

    async def open_writes(self, epoch: int, wait_for_backup: bool) -> None:
        duties = self.duties
        how = "waiting for" if wait_for_backup else "without"
        now = self.now
        if (
            now.role is Role.PRIMARY
            and not self.replica.following
            and now.epoch == epoch
            and duties.journal_epoch() >= epoch
        ):
            # Already leading at this epoch: only whether commits wait changes
            # (after a restart, the end of the journal is applied first).
            await duties.apply_journal_tail()
            await duties.set_backup_active(
                wait_for_backup, f"commits at epoch {epoch} now go on {how} the backup"
            )
            self.cell.set(writable=True, state="active")
            return
        horizon = self.current_horizon()
        await self.replica.stop()
        # Every durable record must be in the databases before anyone writes: this
        # member's journal is the mirror's history from here on.
        await duties.replay_journal(horizon)
        self.cell.set(epoch=epoch)
        duties.clear_abort()
        if duties.journal_epoch() < epoch:
            # Durable before the first write of the epoch: a restart finds it.
            await duties.append_epoch_marker(epoch)
        await duties.create_missing_databases()
        await duties.set_backup_active(wait_for_backup, f"opening writes at epoch {epoch}")
        st = self.state_file.current()
        st.last_role = Role.PRIMARY.value
        st.last_primary = self.me.name
        self.cell.set(role=Role.PRIMARY, state="active", writable=True)
        self.led = True
        await self.state_file.save()
        self.event(
            "writes_open",
            f"member {self.me.name} accepts writes at epoch {epoch} ({how} the backup)",
        )

    async def stop_writes(self, deposed: bool, primary: str | None) -> None:
        self.cell.set(writable=False)
        self._abort_transactions()
        if deposed:
            self.cell.set(state="fenced")
            # Deposed: nothing more commits here; what waits for the backup is aborted.
            self.duties.hold()
            await self.duties.abort_waiters(
                CommitUnknownError(
                    f"member {self.me.name} was deposed ({primary} holds a newer epoch) "
                    "while this commit waited for the backup; the new primary may hold it: "
                    "check before running it again",
                    primary=self._address_of(primary),
                )
            )
            await self.release_vip()
        else:
            self.cell.set(state="in trouble")

    async def follow_primary(self, primary: str, epoch: int) -> None:
        was_primary = self.led
        self.led = False
        role = Role.BACKUP if self.me.kind == "failover" else Role(self.me.kind)
        self.cell.set(writable=False, role=role, epoch=max(self.now.epoch, epoch))
        self._abort_transactions()
        if was_primary:
            horizon = self.current_horizon()
            await self.duties.abort_waiters(
                CommitUnknownError(
                    f"member {self.me.name} now follows {primary}; the new primary may "
                    "hold this commit: check before running it again",
                    primary=self._address_of(primary),
                )
            )
            # Commits cut short above are in the journal but not in the databases.
            # Only those the backup acknowledged are committed; the rest stay in the
            # journal, invisible, until the new primary's start plan says whether it
            # holds them (then they are applied) or not (then they are rolled back
            # without any reader ever having seen them).
            await self.duties.step_down(horizon)
        # A member that held the virtual IP before a crash still has it on its
        # interface (the kernel outlived the process): a follower never holds it.
        await self.release_vip()
        st = self.state_file.current()
        st.last_role = role.value
        st.last_primary = primary
        await self.state_file.save()
        if not self.replica.following:
            self.cell.set(state="connecting")
            self.replica.start()
        self.event("following", f"member {self.me.name} follows {primary} at epoch {epoch}")

    def _address_of(self, name: str | None) -> str | None:
        for mb in self.members():
            if mb.name == name:
                return mb.address
        return None

    def failover_state_changed(self, state: State) -> None:
        """The agent entered ``state``: show it (see ``failover/states.py``)."""
        row = bearing(state)
        self.cell.set(
            role=row.role,
            state=row.word,
            writable=self.now.writable and row.keeps_writes,
        )
        if not self.now.writable:
            self._abort_transactions()

    def _abort_transactions(self) -> None:
        """Open transactions cannot commit any more: roll them back now, so they hold
        neither the writers (a switchover or rejoin would wait for them) nor their client."""
        self.duties.abort_transactions(
            f"the transaction was rolled back: member {self.me.name} stopped "
            f"accepting writes ({self.now.state}); retry it on the primary"
        )

    # -------------------------------------------------------------- hooks

    async def run_hook(self, point: str, epoch: int, error: str | None = None) -> bool:
        result = await self.hooks.run(
            point,
            mirror=self.mirror,
            member=self.me.name,
            epoch=epoch,
            error=error,
            extra={"previous_primary": self.state_file.current().last_primary},
        )
        return bool(result.ok)

    def notify_hook(self, point: str, epoch: int, error: str | None = None) -> None:
        # Notify hooks never block the member.
        task = asyncio.get_running_loop().create_task(self.run_hook(point, epoch, error))
        self.keep(task)

    # ---------------------------------------------------------- virtual IP

    async def take_vip(self) -> None:
        if self.vip is not None:
            await self.vip.take()

    async def release_vip(self) -> None:
        if self.vip is not None:
            await self.vip.release()

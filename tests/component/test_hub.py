"""The hub alone: commits wait for the backup's acknowledgement at the mirror's level.

No member, no sockets: a hub, a link for the backup, and records told durable.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from litemirror.errors import CommitUnknownError
from litemirror.journal import RecordKind
from litemirror.server.stream.hub import Hub, LinkState
from litemirror.testing.fakes import EventRecorder
from litemirror.testing.stream_fakes import record


def run(test: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(asyncio.wait_for(test(), 5))


class JournalEnd:
    """The journal's end as the hub sees it (``last_lsn``)."""

    def __init__(self) -> None:
        self.last = 0

    def __call__(self) -> int:
        return self.last

    def durable(self, hub: Hub, count: int = 1) -> int:
        """``count`` more records are durable here; returns the last LSN."""
        recs = [
            record(self.last + i, 1, RecordKind.CHANGES, "app", b"x") for i in range(1, count + 1)
        ]
        self.last += count
        hub.records_durable(recs)
        return self.last


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def active_backup(hub: Hub) -> None:
    """Connect backup ``b``, streaming and caught up: commits then wait for it."""
    hub.connected(LinkState(member="b", kind="failover", state="streaming"))
    await hub.acked("b", 0, 0, 0)
    assert hub.backup_active


def test_a_commit_answers_only_once_the_backup_has_it_durable() -> None:
    async def go() -> None:
        j = JournalEnd()
        events = EventRecorder()
        hub = Hub("b", 5.0, j, on_event=lambda k, m: events(k, m), ack_level="durable")
        await active_backup(hub)
        assert "backup_active" in events.kinds()
        lsn = j.durable(hub)
        commit = asyncio.create_task(hub.wait_for(lsn, "durable"))
        await settle()
        assert not commit.done()
        await hub.acked("b", received=lsn, durable=0, applied=0)
        await settle()
        assert not commit.done(), "received is not durable"
        assert hub.committed_lsn == 0
        await hub.acked("b", received=lsn, durable=lsn, applied=0)
        await asyncio.wait_for(commit, 1)
        assert hub.committed_lsn == lsn

    run(go)


def test_a_commit_holds_while_the_backup_never_became_active() -> None:
    async def go() -> None:
        j = JournalEnd()
        hub = Hub("b", 0.05, j)
        hub.connected(LinkState(member="b", kind="failover", state="catching up"))
        lsn = j.durable(hub)
        commit = asyncio.create_task(hub.wait_for(lsn, "durable"))
        # Several quality-of-service timeouts: held means held.
        await asyncio.sleep(0.2)
        assert not commit.done()
        assert hub.committed_lsn == 0
        # The proof that this primary may commit alone (the arbiter's record, say).
        await hub.set_backup_active(False, "backup b is inactive at epoch 1")
        await asyncio.wait_for(commit, 1)
        assert hub.committed_lsn == lsn

    run(go)


def test_a_silent_backup_is_reported_to_the_agent_and_the_commit_waits_for_its_word() -> None:
    async def go() -> None:
        j = JournalEnd()
        timeouts: list[int] = []
        hub = Hub("b", 0.05, j, on_ack_timeout=lambda: timeouts.append(j.last))
        await active_backup(hub)
        lsn = j.durable(hub)
        commit = asyncio.create_task(hub.wait_for(lsn, "durable"))
        await asyncio.sleep(0.2)
        assert timeouts == [lsn], "reported once per waiting commit"
        assert not commit.done()
        await hub.set_backup_active(False, "the agent: backup b recorded inactive")
        await asyncio.wait_for(commit, 1)

    run(go)


def test_without_an_agent_the_hub_drops_a_silent_backup_itself() -> None:
    async def go() -> None:
        j = JournalEnd()
        events = EventRecorder()
        hub = Hub("b", 0.05, j, on_event=lambda k, m: events(k, m))
        await active_backup(hub)
        lsn = j.durable(hub)
        await asyncio.wait_for(hub.wait_for(lsn, "durable"), 1)
        assert not hub.backup_active
        assert events.kinds()[-1] == "backup_inactive"
        assert "no acknowledgement of LSN 1" in events.events[-1].message

    run(go)


def test_the_agent_hears_when_the_backup_catches_up_and_when_it_drops() -> None:
    async def go() -> None:
        j = JournalEnd()
        said: list[str] = []
        hub = Hub(
            "b",
            5.0,
            j,
            on_ack_timeout=lambda: said.append("timeout"),
            on_caught_up=lambda: said.append("caught up"),
        )
        j.durable(hub, 3)
        hub.connected(LinkState(member="b", kind="failover", state="streaming"))
        await hub.acked("b", 3, 2, 0)
        assert said == [] and not hub.backup_active
        await hub.acked("b", 3, 3, 0)
        assert said == ["caught up"] and hub.backup_active
        await hub.disconnected("b", "connection reset")
        assert said == ["caught up", "timeout"]
        assert "b" not in hub.links
        assert hub.known["b"] == 3

    run(go)


def test_a_deposed_primary_fails_its_waiting_commits() -> None:
    async def go() -> None:
        j = JournalEnd()
        hub = Hub("b", 5.0, j, on_ack_timeout=lambda: None)
        await active_backup(hub)
        commit = asyncio.create_task(hub.wait_for(j.durable(hub), "durable"))
        await settle()
        await hub.abort_waiters(CommitUnknownError("deposed"))
        with pytest.raises(CommitUnknownError):
            await asyncio.wait_for(commit, 1)

    run(go)


def test_the_commit_point_starts_where_recovery_left_it() -> None:
    async def go() -> None:
        hub = Hub("b", 5.0, lambda: 7, committed_lsn=7)
        assert hub.committed_lsn == 7
        await asyncio.wait_for(hub.wait_for(7, "durable"), 1)

    run(go)

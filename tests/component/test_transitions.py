"""Transitions on fakes of its ports: what each failover action does, and in which order.

No sockets, no processes: the ports are :mod:`litemirror.testing.ha_fakes`, the
role cell is real.
"""

from __future__ import annotations

import asyncio

import pytest

from litemirror.errors import CommitUnknownError, OperationalError
from litemirror.failover import State
from litemirror.server.role import Role, RoleSnapshot
from litemirror.testing.ha_fakes import transitions

PRIMARY5 = RoleSnapshot(Role.PRIMARY, "active", 5, writable=True, reason="leading")
BACKUP4 = RoleSnapshot(Role.BACKUP, "streaming", 4, writable=False, reason="following")


def test_open_writes_opens_only_after_the_epoch_is_durable() -> None:
    rig = transitions(snapshot=BACKUP4, journal_epoch=4, following=True, horizon=90)
    asyncio.run(rig.transitions.open_writes(5, wait_for_backup=False))
    t = rig.trail
    # The receiver stops before the journal is replayed: one writer at a time.
    assert t.index("stop following") < t.index("replay journal above 90")
    assert t.index("replay journal above 90") < t.index("epoch 5 durable in journal")
    assert t.index("epoch 5 durable in journal") < t.index("writable True")
    assert t.index("create missing databases") < t.index("writable True")
    assert t.index("backup active False") < t.index("writable True")
    now = rig.cell()
    assert (now.role, now.state, now.epoch, now.writable) == (Role.PRIMARY, "active", 5, True)
    assert rig.transitions.led
    assert rig.state_file.saved[-1].last_role == "primary"
    assert rig.state_file.saved[-1].last_primary == "b"
    assert rig.events.kinds() == ["writes_open"]
    assert "without the backup" in rig.events.events[0].message


def test_open_writes_does_not_journal_an_epoch_already_there() -> None:
    rig = transitions(snapshot=BACKUP4, journal_epoch=5)
    asyncio.run(rig.transitions.open_writes(5, wait_for_backup=True))
    assert not any("durable in journal" in line for line in rig.trail.lines)
    assert "backup active True" in rig.trail
    assert rig.cell().writable


def test_open_writes_when_already_leading_only_changes_whether_commits_wait() -> None:
    rig = transitions(snapshot=PRIMARY5, journal_epoch=5)
    asyncio.run(rig.transitions.open_writes(5, wait_for_backup=True))
    assert rig.trail.lines == ["apply journal tail", "backup active True"]
    assert rig.cell() == PRIMARY5
    assert rig.events.events == []


def test_deposed_fences_writes_and_says_why_to_waiting_commits() -> None:
    rig = transitions(snapshot=PRIMARY5, vip_held=True)
    asyncio.run(rig.transitions.stop_writes(deposed=True, primary="a"))
    now = rig.cell()
    assert (now.role, now.state, now.writable) == (Role.PRIMARY, "fenced", False)
    t = rig.trail
    assert t.index("writable False") < t.index("abort transactions") < t.index("hold")
    assert t.index("hold") < t.index("abort waiters") < t.index("release vip")
    (err,) = rig.duties.aborted
    assert isinstance(err, CommitUnknownError)
    assert "deposed (a holds a newer epoch)" in err.message
    assert err.primary == "127.0.0.1:7002"  # where the client finds the new primary
    assert rig.vip is not None and not rig.vip.held


def test_stop_writes_in_trouble_keeps_the_hub_and_the_vip() -> None:
    rig = transitions(snapshot=PRIMARY5, vip_held=True)
    asyncio.run(rig.transitions.stop_writes(deposed=False, primary=None))
    assert rig.cell().state == "in trouble" and not rig.cell().writable
    assert "hold" not in rig.trail and "release vip" not in rig.trail


def test_a_primary_that_follows_steps_down_before_following() -> None:
    rig = transitions(snapshot=PRIMARY5, vip_held=True, horizon=70)
    rig.transitions.led = True
    asyncio.run(rig.transitions.follow_primary("a", 6))
    t = rig.trail
    assert t.index("abort waiters") < t.index("step down at 70") < t.index("release vip")
    assert t.index("release vip") < t.index("start following")
    now = rig.cell()
    assert (now.role, now.state, now.epoch, now.writable) == (Role.BACKUP, "connecting", 6, False)
    assert not rig.transitions.led
    assert rig.state_file.saved[-1].last_role == "backup"
    assert rig.state_file.saved[-1].last_primary == "a"


def test_a_dr_member_follows_as_dr_and_keeps_a_running_receiver() -> None:
    rig = transitions(me="c", kind="dr", snapshot=BACKUP4, following=True, vip=False)
    asyncio.run(rig.transitions.follow_primary("a", 4))
    assert rig.cell().role is Role.DR
    assert "start following" not in rig.trail
    assert "step down at 0" not in rig.trail


@pytest.mark.parametrize("role", [Role.BACKUP, Role.DR])
def test_a_member_that_starts_as_follower_releases_a_vip_left_on_its_interface(
    role: Role,
) -> None:
    # The killed predecessor of this process held the VIP; the kernel kept it.
    rig = transitions(vip_held=True)
    asyncio.run(rig.transitions.take_start_role(role, "a is primary"))
    assert rig.vip is not None and not rig.vip.held
    assert rig.trail.index("release vip") < rig.trail.index("start following")
    assert rig.cell().role is role and rig.cell().reason == "a is primary"


def test_starting_as_primary_opens_writes_after_the_state_file_is_saved() -> None:
    rig = transitions()
    asyncio.run(rig.transitions.take_start_role(Role.PRIMARY, "the peer confirms"))
    t = rig.trail
    assert t.index("state file saved at epoch 1 as primary") < t.index("writable True")
    assert t.index("apply journal tail") < t.index("writable True")
    assert rig.cell().role is Role.PRIMARY and rig.transitions.led


def test_prepare_to_lead_takes_the_vip_only_when_the_hooks_say_yes() -> None:
    rig = transitions(refuse_hooks=frozenset({"check_become_primary_ok"}))
    with pytest.raises(OperationalError, match="check_become_primary_ok said no"):
        asyncio.run(rig.transitions.prepare_to_lead(5))
    assert rig.vip is not None and not rig.vip.held

    ok = transitions()
    asyncio.run(ok.transitions.prepare_to_lead(5))
    assert ok.trail.lines == [
        "hook can_start_become_primary yes",
        "hook check_become_primary_ok yes",
        "take vip",
    ]


def test_record_epoch_is_saved_before_it_returns() -> None:
    rig = transitions(snapshot=BACKUP4)
    asyncio.run(rig.transitions.record_epoch(5, "b"))
    assert rig.cell().epoch == 5
    saved = rig.state_file.saved[-1]
    assert (saved.epoch, saved.last_primary) == (5, "b")
    # An older epoch is recorded as told, but the member never goes back.
    asyncio.run(rig.transitions.record_epoch(3, "a"))
    assert rig.cell().epoch == 5


@pytest.mark.parametrize(
    ("state", "role", "word", "writable"),
    [
        (State.PRIMARY_ALONE, Role.PRIMARY, "active (alone)", True),
        (State.IN_TROUBLE, Role.PRIMARY, "in trouble", False),
        (State.SWITCHING_OVER, Role.PRIMARY, "switching over", False),
        (State.FENCED, Role.BACKUP, "fenced", False),
        (State.BACKUP_ACTIVE, Role.BACKUP, "active", False),
        (State.TAKING_OVER, Role.PRIMARY, "taking over", False),
        (State.WAITING, Role.WAITING, "waiting", False),
    ],
)
def test_state_changes_show_in_the_snapshot(
    state: State, role: Role, word: str, writable: bool
) -> None:
    rig = transitions(snapshot=PRIMARY5)
    rig.transitions.failover_state_changed(state)
    now = rig.cell()
    assert (now.role, now.state, now.writable, now.epoch) == (role, word, writable, 5)
    assert ("abort transactions" in rig.trail) is not writable


def test_a_state_never_opens_writes() -> None:
    rig = transitions(snapshot=BACKUP4)
    rig.transitions.failover_state_changed(State.PRIMARY)
    assert rig.cell().role is Role.PRIMARY and not rig.cell().writable


def test_notify_hooks_run_in_the_background() -> None:
    rig = transitions()

    async def go() -> None:
        rig.transitions.notify_hook("notify_become_primary", 5)
        assert "hook notify_become_primary yes" not in rig.trail
        await asyncio.gather(*rig.tasks)

    asyncio.run(go())
    assert rig.trail.lines == ["hook notify_become_primary yes"]


def test_note_epoch_and_reason_touch_nothing_else() -> None:
    rig = transitions(snapshot=PRIMARY5)
    rig.transitions.note_epoch(7)
    rig.transitions.note_reason("why")
    assert rig.cell() == RoleSnapshot(Role.PRIMARY, "active", 7, True, "why")
    assert rig.trail.lines == []


def test_a_restarted_member_that_follows_releases_a_vip_it_never_took_itself() -> None:
    # Not led in this process (led is False), but the VIP is on its interface.
    rig = transitions(snapshot=RoleSnapshot(Role.WAITING, "waiting", 4), vip_held=True)
    asyncio.run(rig.transitions.follow_primary("a", 5))
    assert rig.vip is not None and not rig.vip.held
    assert "step down at 0" not in rig.trail
    assert rig.trail.index("release vip") < rig.trail.index("start following")

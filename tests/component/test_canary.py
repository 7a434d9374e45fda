"""The canary on fake ports and a fake wall clock: writes, ages, stale and recovered events."""

from __future__ import annotations

import asyncio

from litemirror.config import CanarySection
from litemirror.errors import OperationalError
from litemirror.server.ops.canary import Canary, CanaryCollector, decode_canary
from litemirror.server.role import Role
from litemirror.testing.ops_fakes import CanaryRig

CFG = CanarySection(interval_s=1.0, stale_after_s=5.0)


def test_primary_writes_at_its_epoch_and_counts_its_own_canary() -> None:
    rig = CanaryRig()
    canary = Canary(CFG, rig.ports())
    assert asyncio.run(canary.write_once()) is True
    assert [epoch for epoch, _ in rig.markers] == [4]
    assert decode_canary(rig.markers[0][1]) == rig.clock()
    assert canary.age_s() == 0.0
    rig.clock.advance(2.5)
    assert canary.age_s() == 2.5


def test_no_write_unless_writable_primary_nor_when_replication_fails() -> None:
    rig = CanaryRig()
    canary = Canary(CFG, rig.ports())
    rig.role.set(writable=False)
    assert asyncio.run(canary.write_once()) is False
    assert rig.markers == []
    rig.role.set(writable=True)
    rig.replication_error = OperationalError("the backup did not acknowledge")
    assert asyncio.run(canary.write_once()) is False
    assert len(rig.markers) == 1  # journalled, but not counted as applied
    assert canary.written == 0 and canary.age_s() is None


def test_replica_lag_seen_from_the_primary() -> None:
    rig = CanaryRig()
    canary = Canary(CFG, rig.ports())
    asyncio.run(canary.write_once())  # LSN 1 at t0
    rig.clock.advance(1.0)
    asyncio.run(canary.write_once())  # LSN 2 at t0+1
    rig.applied = {"b": 1, "c": 0}
    rig.clock.advance(3.0)
    assert canary.replica_ages() == {"b": 4.0, "c": None}
    # b stays at LSN 1: past the limit it is stale once, seen from the primary.
    rig.clock.advance(2.0)
    canary.check()
    canary.check()
    stale = [e for e in rig.events.events if e.kind == "canary_stale"]
    assert [e.data["of"] for e in stale] == ["b"]
    assert "seen from primary a" in stale[0].message
    rig.applied = {"b": 2, "c": 0}
    asyncio.run(canary.write_once())
    rig.applied = {"b": 3, "c": 0}
    canary.check()
    assert rig.events.kinds()[-1] == "canary_recovered"
    assert rig.events.events[-1].data["of"] == "b"


def test_replica_goes_stale_without_canaries_and_recovers() -> None:
    rig = CanaryRig(Role.BACKUP)
    canary = Canary(CFG, rig.ports())
    rig.clock.advance(6.0)
    canary.check()
    assert rig.events.kinds() == ["canary_stale"]
    canary.marker_applied(b"not a canary")
    canary.marker_applied(CanaryRig.payload(rig.clock() - 1.0))
    canary.check()
    assert rig.events.kinds() == ["canary_stale", "canary_recovered"]
    assert canary.replica_ages() == {}
    assert asyncio.run(canary.write_once()) is False


def test_collector_reports_ages() -> None:
    rig = CanaryRig()
    canary = Canary(CFG, rig.ports())
    asyncio.run(canary.write_once())
    rig.applied = {"b": 1}
    rig.clock.advance(2.0)
    (family,) = list(CanaryCollector(canary).collect())
    assert sorted((s.labels["of"], s.value) for s in family.samples) == [("a", 2.0), ("b", 2.0)]

"""Issue 12, item 11: refusals by limits, by the arbiter, and running out of descriptors are events.

Connection-limit refusals, descriptor exhaustion and the arbiter's refusals
used to leave no event (only log lines, one per attempt), and a deduplicated
event lost the count of those it stood for. Now each is an event with the
peer, at most one per peer host and reason a minute, and the next one -- or
a summary once the minute is over -- says how many were held back.
"""

from __future__ import annotations

import re
import socket
import ssl
import time
from pathlib import Path

import pytest

from litemirror.protocol import arbiter as wire
from litemirror.protocol import messages as m
from litemirror.protocol.framing import FrameDecoder, encode
from litemirror.testing.cluster import Cluster
from litemirror.testing.flood import Flood
from litemirror.testing.secured import ATTACKERS, secured_cluster, secured_mirror, start_with_users


def test_the_arbiter_refusing_a_session_is_an_event(tmp_path: Path) -> None:
    c = secured_mirror(tmp_path, distinct_hosts=True)
    try:
        assert c.arbiter is not None and c.certs is not None
        # A stranger with a TLS connection (no member certificate) claims to be member a.
        ctx = ssl.create_default_context(cafile=str(c.certs / "ca.crt"))
        ctx.check_hostname = False
        with (
            socket.create_connection((c.arbiter.host, c.arbiter.port), 5) as raw,
            ctx.wrap_socket(raw) as s,
        ):
            s.sendall(encode(wire.ArbHello(version=wire.ARB_VERSION, mirror="test", member="a")))
            dec: FrameDecoder[m.ServerMessage] = FrameDecoder(m.ServerMessage)
            dec.feed(s.recv(65536))
            answer = dec.next_message()
        assert isinstance(answer, m.Error) and "refused as member a" in answer.message
        deadline = time.monotonic() + 5
        while not c.arbiter.events("arbiter_refused") and time.monotonic() < deadline:
            time.sleep(0.1)
        (ev,) = c.arbiter.events("arbiter_refused")
        assert "refused as member a" in ev["message"]
        assert ev["data"]["peer"].startswith("127.0.0.1:")
        # The members still hold their sessions: nothing was given to the stranger.
        for mp in c.members.values():
            mp.wait_until(lambda s: s["failover"]["arbiter_up"], 10, "arbiter session")
    finally:
        c.kill_all()


@pytest.mark.slow
def test_refusals_and_exhaustion_are_events_that_count_what_they_held_back(
    tmp_path: Path,
) -> None:
    # So few descriptors that even the lowest caps cannot keep the arbiter from running out.
    c = secured_cluster(tmp_path, distinct_hosts=True, arbiter_nofile=48)
    try:
        _flood_for_a_minute_and_check(c)
    finally:
        c.kill_all()


def _flood_for_a_minute_and_check(c: Cluster) -> None:
    assert c.arbiter is not None and c.certs is not None
    floods: list[Flood] = []
    try:
        start_with_users(c)
        ca = str(c.certs / "ca.crt")
        a = c["a"]
        # One host, more anonymous connections than limits.max_anonymous_per_host (8).
        floods.append(Flood(a.host, a.port, ATTACKERS[:1], 20, ca=ca, retry_s=0.5).start())
        floods.append(
            Flood(c.arbiter.host, c.arbiter.port, ATTACKERS[1:21], 5, ca=ca, retry_s=0.5).start()
        )
        began = time.monotonic()
        while time.monotonic() - began < 63:  # past the minute: the counts come out
            time.sleep(1)
        for f in floods:
            assert f.refused > 0, str(f)
    finally:
        for f in floods:
            f.stop()
    # The member: refusals of one host by the per-host cap, counted.
    refused = [
        ev
        for ev in a.events("connection_refused")
        if ev["data"]["limit"] == "limits.max_anonymous_per_host"
    ]
    assert refused and all(ev["data"]["peer"].startswith(ATTACKERS[0]) for ev in refused)
    assert len(refused) <= 4, [ev["message"] for ev in refused]  # not one per attempt
    held = sum(ev["data"].get("held_back", 0) for ev in refused)
    assert held > 0 and any("more like" in ev["message"] for ev in refused), refused

    # The arbiter: it said at start that its caps did not fit, and it ran out, once a
    # minute in the event log (with the count), not once per attempt in its log.
    budget = c.arbiter.events("descriptor_budget")
    assert budget and "RLIMIT_NOFILE 48" in budget[0]["message"], budget
    exhausted = c.arbiter.events("descriptors_exhausted")
    assert 1 <= len(exhausted) <= 4, [ev["message"] for ev in exhausted]
    assert "Too many open files" in exhausted[0]["message"]
    assert sum(ev["data"].get("held_back", 0) for ev in exhausted) > 0, exhausted
    log = c.arbiter.log_path.read_text(errors="replace")
    assert len(re.findall(r"Errno 24|Too many open files", log)) <= 8

    # Once the flood is over the members get their sessions back.
    for mp in c.members.values():
        mp.wait_until(lambda s: s["failover"]["arbiter_up"], 30, "arbiter session")

"""What each caller sees of a member's status and events: tables, no I/O."""

from __future__ import annotations

from typing import Any

import pytest

from litemirror.security.roles import ANONYMOUS, BOOTSTRAP, MEMBER, OPEN, Principal
from litemirror.security.visibility import (
    HIDDEN_MESSAGE,
    PUBLIC_FIELDS,
    Audience,
    audience_of,
    event_view,
    events_view,
    status_view,
)

READER = Principal("reader", "read", "password")
WRITER = Principal("writer", "write", "certificate")
ADMIN = Principal("root", "admin", "password")
TOKEN = Principal(None, "admin", "token")


@pytest.mark.parametrize(
    ("principal", "required", "audience"),
    [
        (ANONYMOUS, True, Audience.PUBLIC),
        (READER, True, Audience.USER),
        (WRITER, True, Audience.USER),
        (ADMIN, True, Audience.ADMIN),
        (TOKEN, True, Audience.ADMIN),
        (BOOTSTRAP, True, Audience.ADMIN),  # loopback while no admin exists: acts as admin
        (MEMBER, True, Audience.ADMIN),  # another member, by its certificate
        (OPEN, False, Audience.ADMIN),  # auth.require off: as before users existed
        (ANONYMOUS, False, Audience.ADMIN),
    ],
)
def test_audience(principal: Principal, required: bool, audience: Audience) -> None:
    assert audience_of(principal, required) is audience


STATUS: dict[str, Any] = {
    "mirror": "m",
    "member": "a",
    "kind": "failover",
    "address": "10.0.0.1:7701",
    "role": "primary",
    "state": "active",
    "epoch": 3,
    "lsn": 120,
    "writable": True,
    "reason": "taking over as primary at epoch 3",
    "pid": 4242,
    "connections_by_host": {"10.0.0.9": 3},
    "sessions_by_host": {"10.0.0.9": 12},
    "refusals_by_peer": {"10.0.0.66:5123": 7},
    "tls": {"require": True, "subject": "CN=a,OU=member", "serial": "1f"},
    "replicas": [{"member": "b", "lag": {"records": 0}}],
    "events": ["e1", "e2", "e3"],
}
RECENT = [
    {"kind": "role", "message": "e1", "data": {}},
    {"kind": "auth_refused", "message": "e2", "data": {"peer": "10.0.0.66:5123"}},
    {"kind": "user_add", "message": "e3", "data": {"user": "admin1"}},
]


def test_public_status_is_what_a_load_balancer_needs() -> None:
    out = status_view(STATUS, Audience.PUBLIC, RECENT)
    assert set(out) == set(PUBLIC_FIELDS) | {"redacted"}
    assert out["role"] == "primary" and out["writable"] is True and out["epoch"] == 3


def test_users_see_the_operation_but_no_client_and_no_process() -> None:
    out = status_view(STATUS, Audience.USER, RECENT)
    for hidden in ("pid", "connections_by_host", "sessions_by_host", "refusals_by_peer"):
        assert hidden not in out
    assert out["replicas"] == STATUS["replicas"] and out["tls"] == STATUS["tls"]
    assert out["events"] == ["e1", HIDDEN_MESSAGE, HIDDEN_MESSAGE]


def test_admins_see_everything() -> None:
    assert status_view(STATUS, Audience.ADMIN, RECENT) is STATUS


@pytest.mark.parametrize(
    ("kind", "user_sees_message"),
    [
        ("role", True),
        ("failover", True),
        ("seeding_finished", True),
        ("auth_refused", False),
        ("auth_throttled", False),
        ("user_add", False),
        ("admin", False),
        ("tls_refused", False),
        ("replication_refused", False),
        ("some_kind_added_later", False),  # shown only once someone decides it may be
    ],
)
def test_events_by_kind(kind: str, user_sees_message: bool) -> None:
    ev = {
        "ts": 1.0,
        "member": "a",
        "kind": kind,
        "severity": "warning",
        "message": "m",
        "data": {"peer": "10.0.0.66:5123"},
    }
    assert event_view(ev, Audience.ADMIN) is ev
    assert event_view(ev, Audience.PUBLIC) is None
    seen = event_view(ev, Audience.USER)
    assert seen is not None
    assert (seen["kind"], seen["ts"], seen["severity"]) == (kind, 1.0, "warning")
    if user_sees_message:
        assert seen == ev
    else:
        assert seen["message"] == HIDDEN_MESSAGE and seen["data"] == {}
    assert events_view([ev, ev], Audience.PUBLIC) == []

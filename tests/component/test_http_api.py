"""The HTTP API on fake ports, served in-process by aiohttp's own test server.

No member: the role is a cell the test sets, users and admin actions are fakes
(:mod:`litemirror.testing.ops_fakes`). Each test answers in milliseconds.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from litemirror.security.visibility import HIDDEN_MESSAGE
from litemirror.server.ops.event_log import Event
from litemirror.server.ops.http_api import HttpApi, admin_token
from litemirror.server.ops.ports import Following
from litemirror.server.role import Role
from litemirror.testing.ops_fakes import HttpRig

Check = Callable[[TestClient[Any, Any]], Awaitable[None]]


def _serve(rig: HttpRig, check: Check, token: str | None = None) -> None:
    async def main() -> None:
        api = HttpApi(rig.ports(token))
        async with TestClient(TestServer(api.app)) as client:
            await check(client)

    asyncio.run(main())


def _basic(user: str, password: str) -> dict[str, str]:
    raw = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


def test_health_checks_answer_by_role(tmp_path: Path) -> None:
    rig = HttpRig(tmp_path)

    async def check(client: TestClient[Any, Any]) -> None:
        resp = await client.get("/health")
        assert resp.status == 200
        assert (await resp.json())["role"] == "primary"
        assert (await client.get("/primary")).status == 200
        assert (await client.get("/replica")).status == 503
        # A primary that stopped committing is no primary for a load balancer.
        rig.role.set(writable=False)
        assert (await client.get("/primary")).status == 503
        # A streaming backup serves reads, within a staleness bound when one is asked.
        rig.role.set(role=Role.BACKUP, state="connecting", writable=False)
        rig.following = Following("streaming", 0, 0.0)
        assert (await client.get("/primary")).status == 503
        resp = await client.get("/replica")
        assert resp.status == 200
        assert (await resp.json())["replication_state"] == "streaming"
        assert (await client.get("/replica?max_lag_ms=60000")).status == 200
        # Seeding: not readable.
        rig.following = Following("seeding", 100, 0.0)
        assert (await client.get("/replica")).status == 503

    _serve(rig, check)


def test_bad_staleness_bound_is_a_clear_400(tmp_path: Path) -> None:
    rig = HttpRig(tmp_path)

    async def check(client: TestClient[Any, Any]) -> None:
        resp = await client.get("/replica?max_lag_ms=-1")
        assert resp.status == 400
        body = await resp.json()
        assert body["error"] == "ProgrammingError"
        assert "max_lag_ms" in body["message"]

    _serve(rig, check)


def test_admin_refuses_a_reader_and_changes_nothing(tmp_path: Path) -> None:
    rig = HttpRig(tmp_path, auth_require=True)
    rig.users.users = {"rita": ("pw-r", "read"), "ada": ("pw-a", "admin")}

    async def check(client: TestClient[Any, Any]) -> None:
        resp = await client.post("/admin/switchover", json={}, headers=_basic("rita", "pw-r"))
        assert resp.status == 403
        assert (await resp.json())["error"] == "PermissionDeniedError"
        # No credentials at all: 401 with a challenge, and a refusal told to the users.
        resp = await client.post("/admin/journal_switch", json={})
        assert resp.status == 401
        challenges = resp.headers.getall("WWW-Authenticate")
        assert any(c.startswith('Basic realm="litemirror"') for c in challenges)
        assert rig.admin.runs == []
        assert rig.events.kinds() == []
        assert [kind for _, kind, _ in rig.users.refusals] == ["authentication"]
        # An admin's switchover goes to the failover peer by default.
        resp = await client.post("/admin/switchover", json={}, headers=_basic("ada", "pw-a"))
        assert resp.status == 200
        assert rig.admin.runs == [("switchover", {"to": "b", "timeout_s": 30.0})]
        assert rig.events.kinds() == ["admin"]

    _serve(rig, check)


def test_admin_bad_body_changes_nothing(tmp_path: Path) -> None:
    rig = HttpRig(tmp_path)

    async def check(client: TestClient[Any, Any]) -> None:
        resp = await client.post("/admin/switchover", json={"timeout_s": 0})
        assert resp.status == 400
        resp = await client.post("/admin/db_add", json={"name": "x", "nope": 1})
        assert resp.status == 400
        assert (await resp.json())["error"] == "ProgrammingError"
        assert rig.admin.runs == []

    _serve(rig, check)


def test_admin_needs_the_token_when_one_is_set(tmp_path: Path) -> None:
    rig = HttpRig(tmp_path)

    async def check(client: TestClient[Any, Any]) -> None:
        wrong = {"Authorization": "Bearer nope"}
        assert (await client.post("/admin/journal_switch", headers=wrong)).status == 401
        assert rig.admin.runs == []
        right = {"Authorization": "Bearer s3cret"}
        assert (await client.post("/admin/journal_switch", headers=right)).status == 200
        assert rig.admin.runs == [("journal_switch", {})]

    _serve(rig, check, token="s3cret")


def test_reading_endpoints_filtered_for_the_viewer(tmp_path: Path) -> None:
    rig = HttpRig(tmp_path, auth_require=True)
    rig.users.users = {"rita": ("pw-r", "read")}
    rig.recent = [
        Event(1.0, "a", "role", "info", "member a is primary"),
        Event(2.0, "a", "admin", "info", "admin secret details"),
    ]

    async def check(client: TestClient[Any, Any]) -> None:
        # Nobody logged in: no status at all, and the status source was not asked.
        resp = await client.get("/status")
        assert resp.status == 401
        assert rig.status.viewers == []
        # A reader sees the status without host fields and admin events without details.
        resp = await client.get("/status", headers=_basic("rita", "pw-r"))
        assert resp.status == 200
        body = await resp.json()
        assert "pid" not in body and body["state"] == "active"
        assert body["database_list"] == [
            {"name": "db1", "open": True, "importing": False, "applied_lsn": 7, "commits": 5},
            {"name": "db2", "open": False, "importing": True, "applied_lsn": None, "commits": None},
        ]
        resp = await client.get("/events", headers=_basic("rita", "pw-r"))
        messages = [ev["message"] for ev in (await resp.json())["events"]]
        assert messages == ["member a is primary", HIDDEN_MESSAGE]
        # The health check and the metrics stay open.
        assert (await client.get("/health")).status == 200
        assert (await client.get("/metrics")).status == 200

    _serve(rig, check)


def test_admin_token_from_config_or_environment(tmp_path: Path) -> None:
    server = HttpRig(tmp_path).config.server
    assert admin_token(server, {}) is None
    assert admin_token(server, {"LITEMIRROR_HTTP_TOKEN": "t"}) == "t"

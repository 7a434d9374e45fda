"""Notifications against a real SMTP server (STARTTLS + AUTH) and a real HTTP webhook receiver.

The mirror's backup is killed; the primary's ``backup_inactive`` warning must
arrive as an email (over STARTTLS, authenticated, the server's self-signed
certificate verified through ``ca_file``) and as a webhook POST that was
first answered 500 (so it arrived by retry). A second webhook points at a
closed port: its failure is a ``notify_failed`` event that is not itself
notified, and commits go on meanwhile.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import json
import ssl
import threading
import time
from collections.abc import Iterator
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

aiosmtpd_controller = pytest.importorskip("aiosmtpd.controller", reason="pip install aiosmtpd")
from aiosmtpd.smtp import AuthResult, LoginPassword  # noqa: E402
from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402

import litemirror  # noqa: E402
from litemirror.config import SEVERITIES  # noqa: E402
from litemirror.server.ops.event_log import Event  # noqa: E402
from litemirror.server.ops.notify import Channel, DeliveryFailed  # noqa: E402
from litemirror.testing.cluster import Cluster, free_port, wait_for  # noqa: E402

FAST = {"qos_timeout_ms": 1000, "heartbeat_ms": 200}
USER, PASSWORD = "alerts", "correct horse"


def self_signed(tmp: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1/localhost (it is its own CA)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "litemirror test smtp")])
    now = datetime.datetime.now(datetime.UTC)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(ski, critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp / "smtp-cert.pem", tmp / "smtp-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class MailBox:
    """aiosmtpd handler: keeps each message with how its session was secured."""

    def __init__(self) -> None:
        self.messages: list[tuple[Message, bool, bool, list[str]]] = []
        self.auth_failures = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        msg = message_from_bytes(envelope.content)
        self.messages.append(
            (msg, session.ssl is not None, bool(session.authenticated), list(envelope.rcpt_tos))
        )
        return "250 Message accepted"

    def authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        ok = (
            isinstance(data, LoginPassword)
            and data.login == USER.encode()
            and data.password == PASSWORD.encode()
        )
        if not ok:
            self.auth_failures += 1
        return AuthResult(success=ok, handled=False)


@pytest.fixture
def smtp_server(tmp_path: Path) -> Iterator[tuple[int, Path, MailBox]]:
    cert, key = self_signed(tmp_path)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    box = MailBox()
    port = free_port()
    controller = aiosmtpd_controller.Controller(
        box,
        hostname="127.0.0.1",
        port=port,
        tls_context=ctx,
        require_starttls=True,
        auth_required=True,
        auth_require_tls=True,
        authenticator=box.authenticate,
    )
    controller.start()
    try:
        yield port, cert, box
    finally:
        controller.stop()


class Webhook:
    """A real HTTP server on loopback that records JSON POSTs; answers 500 to the first."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.attempts = 0
        hook = self

        class H(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                hook.attempts += 1
                if hook.attempts == 1:
                    self.send_response(500)
                    self.end_headers()
                    self.wfile.write(b"not now")
                    return
                hook.bodies.append(json.loads(body))
                hook.headers.append(dict(self.headers))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), H)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class NotifyCluster(Cluster):
    """A cluster whose config also has a [notify] section (nested tables)."""

    notify_toml = ""

    def write_config(self) -> None:
        super().write_config()
        with open(self.config_path, "a") as f:
            f.write("\n" + self.notify_toml)


def test_backup_killed_email_and_webhook_arrive(
    tmp_path: Path, smtp_server: tuple[int, Path, MailBox]
) -> None:
    smtp_port, cert, box = smtp_server
    hook = Webhook()
    dead = free_port()
    NotifyCluster.notify_toml = f"""
[notify.email]
host = "127.0.0.1"
port = {smtp_port}
starttls = true
username = "{USER}"
password = "{PASSWORD}"
from = "litemirror@example.com"
to = ["oncall@example.com", "dba@example.com"]
min_severity = "warning"
ca_file = "{cert}"

[[notify.webhooks]]
url = "http://127.0.0.1:{hook.port}/hooks/litemirror"
min_severity = "warning"
headers = {{ "X-Token" = "abc123" }}

[[notify.webhooks]]
url = "http://127.0.0.1:{dead}/nobody-listens"
min_severity = "warning"
retries = 1
timeout_s = 2.0
"""
    c = NotifyCluster(tmp_path, members=(("a", "failover"), ("b", "failover")), mirror=FAST)
    try:
        c.start()
        a = c["a"]
        a.wait_until(lambda st: st.get("backup_active") is True, 20, "backup b active on primary a")
        conn = litemirror.connect(c.url(members=["a"]))
        cur = conn.cursor()
        cur.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
        conn.commit()

        c["b"].kill()
        # Commits go on while notifications are sent (and one target fails).
        t0 = time.monotonic()
        for i in range(50):
            cur.execute("INSERT INTO t(v) VALUES (?)", (f"row {i}",))
            conn.commit()
        commit_time = time.monotonic() - t0

        mails = wait_for(
            lambda: [m for m in box.messages if "backup_inactive" in str(m[0]["Subject"])],
            20,
            "email about backup_inactive",
        )
        msg, over_tls, authenticated, rcpts = mails[0]
        assert over_tls and authenticated
        assert sorted(rcpts) == ["dba@example.com", "oncall@example.com"]
        assert str(msg["Subject"]) == "[litemirror test] a: WARNING backup_inactive"
        text = msg.get_payload(decode=True).decode()  # type: ignore[union-attr]
        assert "backup b" in text and '"kind": "backup_inactive"' in text
        assert box.auth_failures == 0

        bodies = wait_for(
            lambda: [b for b in hook.bodies if b["kind"] == "backup_inactive"],
            20,
            "webhook about backup_inactive",
        )
        assert bodies[0]["mirror"] == "test" and bodies[0]["member"] == "a"
        assert bodies[0]["severity"] == "warning"
        assert hook.headers[0]["X-Token"] == "abc123"
        assert hook.attempts >= 2  # the first attempt was answered 500: delivered by retry

        # The dead target's failure is an event on the primary ...
        nf = wait_for(lambda: a.events("notify_failed"), 20, "notify_failed event")
        assert str(dead) in nf[0]["message"] and nf[0]["severity"] == "error"
        # ... that is never notified itself (it is at 'error', above min_severity).
        time.sleep(1.0)
        assert not [b for b in hook.bodies if b["kind"] == "notify_failed"]
        assert not [m for m in box.messages if "notify_failed" in str(m[0]["Subject"])]
        # 50 commits with the backup gone and a target failing: no waiting on notifications.
        assert commit_time < 10, commit_time
        st = a.status()
        by_target = {n["target"]: n for n in st["notify"]}
        assert by_target[f"webhook http://127.0.0.1:{dead}/nobody-listens"]["failed"] >= 1
        assert by_target[f"webhook http://127.0.0.1:{hook.port}/hooks/litemirror"]["sent"] >= 1
        conn.close()
    finally:
        c.kill_all()
        hook.close()


def test_full_channel_drops_the_oldest_and_counts() -> None:
    """A channel whose target is stuck keeps the newest events and counts the dropped ones."""

    async def scenario() -> tuple[Channel, list[str]]:
        delivered: list[str] = []
        gate = asyncio.Event()

        async def send(ev: Event) -> None:
            await gate.wait()
            if ev.kind == "bad":
                raise DeliveryFailed("refused")
            delivered.append(ev.kind)

        failures: list[str] = []
        ch = Channel("test", "warning", 0, 3, send, lambda _c, ev, _w: failures.append(ev.kind))
        task = asyncio.get_running_loop().create_task(ch.run())

        def ev(kind: str, severity: str = "warning") -> Event:
            return Event(ts=time.time(), member="a", kind=kind, severity=severity, message=kind)

        ch.offer(ev("first"))
        await asyncio.sleep(0.05)  # "first" is being sent (stuck on the gate)
        ch.offer(ev("quiet", "info"))  # below min_severity: never queued
        for kind in ("e1", "e2", "e3", "e4", "bad"):
            ch.offer(ev(kind))
        gate.set()
        while not ch.idle:
            await asyncio.sleep(0.01)
        task.cancel()
        assert failures == ["bad"]
        return ch, delivered

    ch, delivered = asyncio.run(scenario())
    assert delivered == ["first", "e3", "e4"]
    assert (ch.dropped, ch.sent, ch.failed) == (2, 3, 1)
    assert SEVERITIES.index("warning") > SEVERITIES.index("info")

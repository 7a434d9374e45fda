"""Mutual TLS with real processes: required TLS, refused certificates, rotation."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import signal
import socket
import ssl
import time
import urllib.request
from typing import Any

import pytest

import litemirror
from litemirror import errors
from litemirror.client.credentials import ClientTls, use_tls
from litemirror.protocol import messages as m
from litemirror.protocol.framing import FrameDecoder, encode
from litemirror.security.certs import Role, create_ca, issue, leaf_files, load_certificates
from litemirror.testing.cluster import Cluster, free_port
from litemirror.testing.workload import Workload, settle_backup
from litemirror.testing.workload import ids_on as _ids
from litemirror.testing.workload import other as _other

FAST = {"qos_timeout_ms": 1000, "heartbeat_ms": 200}


def _mirror(factory: Any, **kw: Any) -> Cluster:
    """Two failover members and an arbiter, TLS required everywhere, backup active."""
    c: Cluster = factory(
        members=[("a", "failover"), ("b", "failover")],
        arbiter=True,
        mirror=FAST,
        tls_require=True,
        **kw,
    )
    for mp in c.members.values():
        mp.http = f"127.0.0.1:{free_port()}"
    c.write_config()
    c.start()
    settle_backup(c)
    conn = litemirror.connect(c.url("app"))
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)")
    conn.commit()
    conn.close()
    return c


def _raw_exchange(host: str, port: int, payload: bytes) -> bytes:
    with socket.create_connection((host, port), timeout=5) as s:
        s.sendall(payload)
        chunks = []
        while True:
            try:
                data = s.recv(65536)
            except ConnectionResetError:
                break
            if not data:
                break
            chunks.append(data)
        return b"".join(chunks)


def test_required_tls_mirror_replicates_and_fails_over(cluster_factory: Any) -> None:
    c = _mirror(cluster_factory)
    old = c.primary().name
    new = _other(old)
    with Workload(c.url("app", retry=5)) as w:
        w.wait_acks(200)
        c[old].kill()
        w.wait_acks(len(w.acked) + 200)
    st = c[new].status()
    assert st["role"] == "primary" and st["epoch"] == 2
    present = _ids(c, new)
    lost = [i for i, _, _ in w.acked if i not in present]
    assert not lost, f"acknowledged writes lost: {lost[:10]}"
    c[old].start()
    c[new].wait_until(lambda s: s.get("backup_active") is True, 30, "old primary rejoined")
    r = c.verify()
    assert r.returncode == 0, r.stdout + r.stderr
    # Every member-to-member link ran over TLS: no refusals were needed.
    assert not c[new].events("tls_refused")
    # The event log of the whole mirror, read over HTTPS.
    r = c.run_cli("events", "--source", "http")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "taking over" in r.stdout


def test_plaintext_is_refused_cleanly_on_every_port(cluster_factory: Any) -> None:
    c = _mirror(cluster_factory)
    p = c.primary()
    before = p.status()["lsn"]
    # Driver without TLS: a clear error, not a hang or a reset.
    url = f"litemirror://{p.address}/app?connect_timeout=2"
    with pytest.raises(errors.Error, match="accepts only TLS"):
        litemirror.connect(url).execute("INSERT INTO t (id) VALUES (1)")
    # A raw plaintext Hello gets one Error frame, then the connection closes.
    hello = m.Hello(version=m.PROTOCOL_VERSION, database="app")
    dec: FrameDecoder[Any] = FrameDecoder(m.ServerMessage)
    dec.feed(_raw_exchange(p.host, p.port, encode(hello)))
    answer = dec.next_message()
    assert isinstance(answer, m.Error) and "accepts only TLS" in answer.message
    # The arbiter port likewise.
    assert c.arbiter is not None
    dec = FrameDecoder(m.ServerMessage)
    dec.feed(_raw_exchange(c.arbiter.host, c.arbiter.port, encode(hello)))
    answer = dec.next_message()
    assert isinstance(answer, m.Error) and "only TLS" in answer.message
    # HTTP: plain http gets a 400 that says to use https; https with the CA works.
    assert p.http is not None
    host, port = p.http.split(":")
    raw = _raw_exchange(host, int(port), b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 400") and b"HTTPS only" in raw
    assert c.certs is not None
    ctx = ssl.create_default_context(cafile=str(c.certs / "ca.crt"))
    with urllib.request.urlopen(f"https://{p.http}/primary", context=ctx, timeout=5) as resp:
        assert resp.status == 200
    with urllib.request.urlopen(f"https://{p.http}/metrics", context=ctx, timeout=5) as resp:
        assert b"litemirror_tls_certificate_expiry_timestamp_seconds{" in resp.read()
    # Nothing changed, and each refusal was logged with the peer's address.
    assert p.status()["lsn"] == before
    refusals = p.events("tls_refused")
    assert refusals and all(ev["data"]["peer"].startswith("127.0.0.1:") for ev in refusals)


def _bad_certificate(c: Cluster, case: str, name: str) -> None:
    """Replace member ``name``'s certificate with a bad one."""
    assert c.certs is not None
    files = leaf_files(c.certs, name, Role.MEMBER)
    host = c[name].host
    if case == "other_ca":
        other = c.base / "other-ca"
        create_ca(other, common_name="some other CA")
        bad = issue(other, name, Role.MEMBER, hosts=[host])
    elif case == "expired":
        long_ago = dt.datetime.now(dt.UTC) - dt.timedelta(days=30)
        bad = issue(c.certs, f"{name}-old", Role.MEMBER, hosts=[host], days=2, now=long_ago)
    else:  # a valid certificate of this CA, but for member "x"
        bad = issue(c.certs, "x", Role.MEMBER, hosts=[host])
    shutil.copyfile(bad.cert, files.cert)
    shutil.copyfile(bad.key, files.key)


@pytest.mark.parametrize("case", ["other_ca", "expired", "wrong_member"])
def test_member_with_a_bad_certificate_is_refused(cluster_factory: Any, case: str) -> None:
    c: Cluster = cluster_factory(
        members=[("a", "failover"), ("b", "failover")], arbiter=True, mirror=FAST, tls=True
    )
    assert c.certs is not None
    _bad_certificate(c, case, "b")
    assert c.arbiter is not None
    c.arbiter.start()
    c.start("a")
    c["a"].wait_until(lambda s: s.get("role") == "primary" and s.get("writable"), 30, "primary")
    conn = litemirror.connect(c.url("app", members=["a"]))
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)")
    conn.executemany("INSERT INTO t (id) VALUES (?)", [(i,) for i in range(100)])
    conn.commit()
    c["b"].start(wait=False)
    # a refuses b's replication stream and peer link; the arbiter refuses its session.
    deadline = time.monotonic() + 30
    while not c["a"].events("tls_refused"):
        assert time.monotonic() < deadline, c.logs()
        time.sleep(0.1)
    deadline = time.monotonic() + 30
    assert c.arbiter is not None
    while "refused" not in c.arbiter.log_tail(200):
        assert time.monotonic() < deadline, c.arbiter.log_tail()
        time.sleep(0.1)
    time.sleep(1.0)
    # b's own certificate may not verify (other CA): ask it in plaintext, which
    # this mirror still allows for clients (tls.require is off).
    use_tls(None)
    try:
        st_b = c["b"].status()
    finally:
        use_tls(ClientTls(str(c.certs / "ca.crt")))
    assert st_b["role"] != "backup" and st_b["role"] != "primary"
    assert int((st_b.get("replication") or {}).get("applied_lsn") or 0) == 0
    assert not (c["b"].data_dir / "app.db").exists()
    st_a = c["a"].status()
    assert st_a["role"] == "primary" and st_a.get("backup_active") is not True
    reason = " ".join(ev["message"] for ev in c["a"].events("tls_refused"))
    if case == "wrong_member":
        assert "certificate is for member x" in reason
    elif case == "expired":
        assert "expired" in reason
    else:
        assert "certificate" in reason
    # a keeps committing, alone.
    conn.execute("INSERT INTO t (id) VALUES (1000)")
    conn.commit()
    conn.close()


def test_certificate_rotation_loses_no_acknowledged_write(cluster_factory: Any) -> None:
    c = _mirror(cluster_factory)
    assert c.certs is not None
    first = c.primary().name
    second = _other(first)
    old_serials = {
        n: load_certificates(leaf_files(c.certs, n, Role.MEMBER).cert)[0].serial_number
        for n in c.members
    }
    with Workload(c.url("app", retry=5)) as w:
        w.wait_acks(100)
        # The backup first: new certificate, restart, it catches up.
        c.issue_member(second, c[second].host)
        c[second].stop()
        c[second].start()
        c[first].wait_until(lambda s: s.get("backup_active") is True, 30, "backup back")
        w.wait_acks(len(w.acked) + 100)
        # Then switch over and do the same for the old primary.
        r = c.run_cli("switchover", "--to", second)
        assert r.returncode == 0, r.stdout + r.stderr
        c.issue_member(first, c[first].host)
        c[first].stop()
        c[first].start()
        c[second].wait_until(lambda s: s.get("backup_active") is True, 30, "rejoined")
        w.wait_acks(len(w.acked) + 100)
    present = _ids(c, second)
    lost = [i for i, _, _ in w.acked if i not in present]
    assert not lost, f"acknowledged writes lost: {lost[:10]}"
    # Each member now presents its new certificate.
    ctx = ssl.create_default_context(cafile=str(c.certs / "ca.crt"))
    for name, mp in c.members.items():
        with (
            socket.create_connection((mp.host, mp.port), timeout=5) as raw,
            ctx.wrap_socket(raw, server_hostname=mp.host) as tls,
        ):
            der = tls.getpeercert(binary_form=True)
        from cryptography import x509

        assert der is not None
        assert x509.load_der_x509_certificate(der).serial_number != old_serials[name]
    r = c.verify()
    assert r.returncode == 0, r.stdout + r.stderr


def _serial_presented(c: Cluster, name: str) -> int:
    from cryptography import x509

    assert c.certs is not None
    mp = c[name]
    ctx = ssl.create_default_context(cafile=str(c.certs / "ca.crt"))
    with (
        socket.create_connection((mp.host, mp.port), timeout=5) as raw,
        ctx.wrap_socket(raw, server_hostname=mp.host) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return int(x509.load_der_x509_certificate(der).serial_number)


def test_sighup_rotates_a_certificate_without_a_restart(cluster_factory: Any) -> None:
    c = _mirror(cluster_factory)
    assert c.certs is not None
    backup = _other(c.primary().name)
    mp = c[backup]
    assert mp.proc is not None
    pid, before = mp.proc.pid, _serial_presented(c, backup)
    new_cert = c.issue_member(backup, mp.host)
    new_serial = load_certificates(new_cert)[0].serial_number
    os.kill(pid, signal.SIGHUP)
    deadline = time.monotonic() + 20
    while not c[backup].events("tls_reloaded"):
        assert time.monotonic() < deadline, mp.log_tail()
        time.sleep(0.05)
    assert _serial_presented(c, backup) == new_serial != before
    assert mp.proc.pid == pid and mp.running  # no restart
    # status tells which certificate is presented and how long it stays valid
    tls = mp.status()["tls"]
    assert tls["require"] is True and f"CN={backup}" in tls["subject"]
    assert int(tls["serial"], 16) == new_serial and tls["days_left"] > 800
    # The mirror goes on: a write reaches the backup.
    conn = litemirror.connect(c.url("app"))
    conn.execute("INSERT INTO t (id) VALUES (77)")
    conn.commit()
    lsn = conn.last_lsn
    conn.close()
    mp.wait_applied(lsn)
    # A broken file is refused and the running certificate stays.
    leaf_files(c.certs, backup, Role.MEMBER).key.write_text("not a key")
    os.kill(pid, signal.SIGHUP)
    deadline = time.monotonic() + 20
    while not any("TLS reload refused" in e["message"] for e in c[backup].events("config_refused")):
        assert time.monotonic() < deadline, mp.log_tail()
        time.sleep(0.05)
    assert _serial_presented(c, backup) == new_serial

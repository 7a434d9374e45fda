"""``litemirror certs`` as an operator runs it: real processes, files checked with OpenSSL."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

LITEMIRROR = str(Path(sys.executable).with_name("litemirror"))
OPENSSL = shutil.which("openssl")


def certs(*args: str | Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "160"}
    return subprocess.run(
        [LITEMIRROR, "certs", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def openssl_verify(ca: Path, cert: Path, purpose: str) -> subprocess.CompletedProcess[str]:
    assert OPENSSL is not None
    return subprocess.run(
        [OPENSSL, "verify", "-x509_strict", "-purpose", purpose, "-CAfile", str(ca), str(cert)],
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_init_member_client_show(tmp_path: Path) -> None:
    d = tmp_path / "certs"
    done = certs("init", "--dir", d)
    assert done.returncode == 0, done.stderr
    assert "CA created" in done.stdout
    done = certs("member", "a", "--host", "db1.example", "10.1.2.3", "--host", "::1", "--dir", d)
    assert done.returncode == 0, done.stderr
    done = certs("client", "alice", "--dir", d, "--days", "30")
    assert done.returncode == 0, done.stderr
    for key in (d / "ca.key", d / "members" / "a.key", d / "clients" / "alice.key"):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, key

    shown = certs("show", d / "members" / "a.crt")
    assert shown.returncode == 0, shown.stderr
    out = shown.stdout
    assert "CN=a,OU=member,O=litemirror" in out
    assert "CN=litemirror CA,O=litemirror" in out
    assert "DNS:db1.example, IP:10.1.2.3, IP:::1" in out
    assert "serverAuth, clientAuth" in out
    assert "digital_signature" in out
    assert "SHA-256 fingerprint" in out
    assert "824 days left" in out or "825 days left" in out

    client = certs("show", d / "clients" / "alice.crt").stdout
    assert "CN=alice,OU=client,O=litemirror" in client and "serverAuth" not in client


@pytest.mark.skipif(OPENSSL is None, reason="needs the openssl command")
def test_openssl_accepts_the_chain_and_the_purposes(tmp_path: Path) -> None:
    d = tmp_path / "certs"
    for args in (("init",), ("member", "a", "--host", "localhost"), ("client", "alice")):
        assert certs(*args, "--dir", d).returncode == 0
    ca = d / "ca.crt"
    assert openssl_verify(ca, d / "members" / "a.crt", "sslserver").returncode == 0
    assert openssl_verify(ca, d / "members" / "a.crt", "sslclient").returncode == 0
    assert openssl_verify(ca, d / "clients" / "alice.crt", "sslclient").returncode == 0
    refused = openssl_verify(ca, d / "clients" / "alice.crt", "sslserver")
    assert (
        refused.returncode != 0
        and "unsuitable certificate purpose" in refused.stdout + refused.stderr
    )


def test_refusals_are_clear_and_write_nothing(tmp_path: Path) -> None:
    d = tmp_path / "certs"
    missing = certs("member", "a", "--host", "localhost", "--dir", d)
    assert missing.returncode == 2
    assert "no CA in" in missing.stderr and "litemirror certs init" in missing.stderr
    assert not d.exists()

    assert certs("init", "--dir", d).returncode == 0
    ca_before = (d / "ca.crt").read_bytes()
    again = certs("init", "--dir", d)
    assert again.returncode == 2 and "already exists" in again.stderr and "--force" in again.stderr
    assert (d / "ca.crt").read_bytes() == ca_before
    assert certs("init", "--dir", d, "--force").returncode == 0
    assert (d / "ca.crt").read_bytes() != ca_before

    bad = certs("member", "a", "--host", "db_1!.example", "--dir", d)
    assert bad.returncode == 2 and "bad host 'db_1!.example'" in bad.stderr
    assert not (d / "members").exists()

    nohost = certs("member", "a", "--dir", d)
    assert nohost.returncode == 2 and "--host" in nohost.stderr

    for path, message in (
        (tmp_path / "nope.crt", "cannot read"),
        (d, "cannot read"),
        (d / "ca.key", "no readable PEM certificate"),
    ):
        shown = certs("show", path)
        assert shown.returncode == 2, shown
        assert message in shown.stderr and str(path) in shown.stderr
        assert "Traceback" not in shown.stderr


def test_rsa_and_a_bundle(tmp_path: Path) -> None:
    old, new = tmp_path / "old", tmp_path / "new"
    assert certs("init", "--dir", old, "--key-type", "rsa").returncode == 0
    assert certs("init", "--dir", new, "--name", "litemirror CA 2").returncode == 0
    bundle = tmp_path / "bundle.crt"
    bundle.write_bytes((old / "ca.crt").read_bytes() + (new / "ca.crt").read_bytes())
    shown = certs("show", bundle)
    assert shown.returncode == 0
    assert "RSA 3072" in shown.stdout and "CN=litemirror CA 2" in shown.stdout

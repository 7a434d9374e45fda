"""Finding 8, the page: the Mirror Monitor logs in, in a real headless Chromium over HTTPS.

Once ``/mirror`` needs a login, the page must log in without putting a
password where it could leak: a form whose fields go as JSON in a POST, an
HttpOnly, Secure, SameSite=Strict session cookie holding a random token, no
credentials in URLs or in the page's storage; and a login that ends with the
password it was made with.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from litemirror.security.visibility import HIDDEN_MESSAGE
from litemirror.testing.secured import (
    PASSWORDS,
    cli,
    https,
    raw_login,
    secured_mirror,
    wait_primary,
)

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def log_in(page: Any, user: str, password: str) -> None:
    page.fill("#login-user", user)
    page.fill("#login-password", password)
    page.click("#login-submit")


def test_the_monitor_logs_in_with_a_form_and_an_http_only_cookie(
    tmp_path: Path, chromium: Callable[..., Any]
) -> None:
    c = secured_mirror(tmp_path / "mirror", http=True)
    try:
        primary = wait_primary(c)
        backup = next(n for n in c.members if n != primary)
        # Someone guessed at the reader's password from another host.
        assert raw_login(c, primary, "reader", "guess", source="127.0.0.90").kind != "ok"

        # The mirror's own CA is not in the browser's store: the test accepts the
        # member's certificate (TLS itself is checked by the other tests).
        page = chromium(ignore_https_errors=True)
        sent: list[Any] = []
        page.on("request", lambda request: sent.append(request))
        page.goto(f"https://{c.http[primary]}/")
        page.wait_for_selector("#login:not([hidden])")
        assert page.locator("#dashboard").is_hidden()
        assert page.locator("#members tbody tr").count() == 0  # nothing shown before login

        log_in(page, "reader", "not-the-password")
        page.wait_for_function(
            "document.querySelector('#login-error').textContent.includes('authentication failed')"
        )
        assert page.locator("#dashboard").is_hidden()
        assert page.input_value("#login-password") == ""  # not kept in the form either
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "monitor-login.png"), full_page=True)

        log_in(page, "reader", PASSWORDS["reader"])
        for name in c.members:
            page.wait_for_selector(f'#members tr[data-member="{name}"]', timeout=15000)
        assert page.locator(f'#members tr[data-member="{backup}"]').get_attribute("data-role") == (
            "backup"
        )
        assert page.inner_text("#who-text") == "reader (read)"
        # A read user sees that logins were refused, not who tried from where.
        refused = page.locator('#events li[data-kind="auth_refused"]').first
        refused.wait_for(timeout=15000)
        assert HIDDEN_MESSAGE in refused.inner_text()
        assert "127.0.0.90" not in page.inner_text("#events")

        # The login is a random token in a cookie the page's script cannot read.
        cookies = [k for k in page.context.cookies() if k["name"].endswith(f"litemirror-{primary}")]
        assert len(cookies) == 1, page.context.cookies()
        cookie = cookies[0]
        assert cookie["name"] == f"__Host-litemirror-{primary}"
        assert cookie["httpOnly"] and cookie["secure"] and cookie["sameSite"] == "Strict"
        assert cookie["expires"] == -1  # ends with the browser; the member ends it sooner
        assert PASSWORDS["reader"] not in cookie["value"] and len(cookie["value"]) >= 40
        assert page.evaluate("document.cookie") == ""
        assert page.evaluate("localStorage.length + sessionStorage.length") == 0
        for request in sent:
            assert "password" not in request.url and PASSWORDS["reader"] not in request.url
        posts = [r for r in sent if r.method == "POST"]
        assert [r.url.rsplit("/", 1)[-1] for r in posts] == ["login", "login"]
        page.screenshot(path=str(ARTIFACTS / "monitor-logged-in.png"), full_page=True)

        # A password change ends the login at once: the page asks again.
        r = cli(
            c, "user", "passwd", "reader", user="root", LITEMIRROR_NEW_PASSWORD="reader-secret-new"
        )
        assert r.returncode == 0, r.stderr
        page.wait_for_selector("#login:not([hidden])", timeout=15000)
        assert "ended" in page.inner_text("#login-error")

        # An admin sees who tried from where; logging out ends the token.
        log_in(page, "root", PASSWORDS["root"])
        page.wait_for_selector('#members tr[data-member="a"]', timeout=15000)
        assert page.inner_text("#who-text") == "root (admin)"
        page.wait_for_function(
            "document.querySelector('#events').textContent.includes('127.0.0.90')",
            timeout=15000,
        )
        token = next(
            k["value"] for k in page.context.cookies() if k["name"].endswith(f"-{primary}")
        )
        page.click("#logout")
        page.wait_for_selector("#login:not([hidden])")
        cookie_header = {"Cookie": f"__Host-litemirror-{primary}={token}"}
        assert https(c, primary, "/mirror", headers=cookie_header)[0] == 401  # revoked
        status = page.evaluate(
            "fetch('mirror', {headers: {'X-Litemirror-Page': '1'}}).then(r => r.status)"
        )
        assert status == 401
    finally:
        c.kill_all()


def test_login_form_refuses_what_a_browser_form_from_another_site_sends(
    tmp_path: Path,
) -> None:
    c = secured_mirror(tmp_path / "mirror", members=[("a", "failover")], arbiter=False, http=True)
    try:
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        code, body, _ = https(c, "a", "/login", method="POST", headers=form)
        assert code == 400 and "JSON" in body["message"]
        good = {"user": "reader", "password": PASSWORDS["reader"]}
        code, body, headers = https(c, "a", "/login", method="POST", body=good)
        assert code == 200 and body["role"] == "read"
        cookie = headers["Set-Cookie"]
        for flag in ("HttpOnly", "Secure", "SameSite=Strict", "Path=/"):
            assert flag in cookie, cookie
        assert "Max-Age" not in cookie and "expires" not in cookie.lower()
        bad = {"user": "reader", "password": "wrong"}
        code, body, headers = https(c, "a", "/login", method="POST", body=bad)
        assert code == 401 and "Set-Cookie" not in headers
        assert "Basic" not in (headers.get("WWW-Authenticate") or "")  # no browser pop-up
    finally:
        c.kill_all()

"""Browser logins on the HTTP port: short-lived tokens in a cookie (pure: time and token given).

The Mirror Monitor page logs in with a form: ``POST /login`` checks the user
name and password exactly like any login (same back-off), and on success the
member hands the browser a random token in a cookie (``HttpOnly``,
``SameSite=Strict``, ``Secure`` over HTTPS). This module keeps the tokens:

* only a digest of each token is kept, so the table cannot be replayed from
  a memory dump of it alone;
* a token ends ``idle_s`` after its last use and ``lifetime_s`` after the
  login, whichever comes first, and at ``POST /logout``;
* each token remembers a fingerprint of the user's stored password hash; the
  caller compares it with the user's current one at every use, so ``user
  passwd`` and ``user remove`` end the user's browser logins at once (the
  role is read afresh at every use too);
* at most ``max_tokens`` are kept (the oldest login goes first).

Tokens live in the member process only: a restart, or another member, means
logging in again.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class TokenLogin:
    """Who a token logged in as."""

    user: str
    #: A fingerprint of the user's stored password hash at login.
    credential: bytes
    created: float


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


@dataclass
class LoginTokens:
    idle_s: float = 15 * 60.0
    lifetime_s: float = 8 * 3600.0
    max_tokens: int = 1000
    #: digest of the token -> (the login, time of its last use)
    _tokens: OrderedDict[bytes, tuple[TokenLogin, float]] = field(
        default_factory=OrderedDict, repr=False
    )

    def __len__(self) -> int:
        return len(self._tokens)

    def issue(self, token: str, user: str, credential: bytes, now: float) -> None:
        """Remember ``token`` (random, from the caller) as a login of ``user``."""
        self._tokens[_digest(token)] = (TokenLogin(user, credential, now), now)
        while len(self._tokens) > self.max_tokens:
            self._tokens.popitem(last=False)

    def check(self, token: str, now: float) -> TokenLogin | None:
        """The login ``token`` stands for, if it is still valid (its use is recorded)."""
        key = _digest(token)
        entry = self._tokens.get(key)
        if entry is None:
            return None
        login, last = entry
        if now - last > self.idle_s or now - login.created > self.lifetime_s:
            del self._tokens[key]
            return None
        self._tokens[key] = (login, now)
        return login

    def revoke(self, token: str) -> bool:
        return self._tokens.pop(_digest(token), None) is not None

"""Password hashes: scrypt in a self-describing string, and their verification.

Theory of operation
-------------------
A stored hash names its algorithm and parameters, so the parameters can be
raised later without invalidating the hashes already stored::

    scrypt$ln=15,r=8,p=1$<salt>$<hash>

``ln`` is log2 of scrypt's cost ``N``; ``r`` the block size; ``p`` the
parallelism; salt (16 random bytes) and hash (32 bytes) are base64 without
padding. With the defaults one hash takes about 100 ms of one core and
32 MiB of memory: cheap for a login, expensive for someone guessing
offline from a copy of the system database. Callers run :func:`hash_password`
and :func:`verify_password` on a worker thread, never on the event loop.

:func:`parse` refuses anything that is not exactly this shape with
:class:`ValueError` and nothing else: stored strings come from a database
file, which may be damaged or hostile. It also refuses parameters beyond
:data:`MAX_MEMORY`, :data:`MAX_P` and :data:`MAX_WORK`, so a crafted string cannot make a
member allocate gigabytes or spin for minutes.

:func:`dummy_verify` costs what a real verification costs and never
succeeds: it is what a member runs for a user that does not exist, so the
time of the answer does not say whether the user exists.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
import unicodedata
from dataclasses import dataclass

SCHEME = "scrypt"
#: Default cost: N = 2**15, r = 8, p = 1 (32 MiB, about 100 ms).
DEFAULT_LN = 15
DEFAULT_R = 8
DEFAULT_P = 1
SALT_BYTES = 16
HASH_BYTES = 32
#: Memory one verification may take (128 * r * N bytes): 256 MiB.
MAX_MEMORY = 256 * 1024 * 1024
#: Most lanes one verification may run (OpenSSL runs them one after another).
MAX_P = 16
#: Most work one verification may take (128 * r * N * p): 16 times the default.
MAX_WORK = 16 * 128 * DEFAULT_R * (1 << DEFAULT_LN) * DEFAULT_P
#: Longest password accepted (scrypt itself has no limit; this bounds the work).
MAX_PASSWORD_CHARS = 1024

_PARAMS = re.compile(r"ln=([0-9]{1,2}),r=([0-9]{1,3}),p=([0-9]{1,2})\Z")
_B64 = re.compile(r"[A-Za-z0-9+/]+\Z")


@dataclass(frozen=True, slots=True)
class ScryptHash:
    """A parsed stored hash."""

    ln: int
    r: int
    p: int
    salt: bytes
    digest: bytes

    def format(self) -> str:
        return f"{SCHEME}$ln={self.ln},r={self.r},p={self.p}${_b64(self.salt)}${_b64(self.digest)}"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str, what: str) -> bytes:
    if not _B64.match(text) or len(text) % 4 == 1:
        raise ValueError(f"password hash: {what} is not base64")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except binascii.Error:
        raise ValueError(f"password hash: {what} is not base64") from None


def parse(stored: str) -> ScryptHash:
    """Parse a stored hash; :class:`ValueError` for anything else."""
    if not isinstance(stored, str):
        raise ValueError(f"password hash must be text, not {type(stored).__name__}")
    if len(stored) > 512 or not stored.isascii():
        raise ValueError("password hash is not of the form scrypt$ln=..,r=..,p=..$salt$hash")
    parts = stored.split("$")
    if len(parts) != 4 or parts[0] != SCHEME:
        raise ValueError("password hash is not of the form scrypt$ln=..,r=..,p=..$salt$hash")
    params = _PARAMS.match(parts[1])
    if params is None:
        raise ValueError(f"password hash: parameters {parts[1][:40]!r} are not ln=..,r=..,p=..")
    ln, r, p = (int(x) for x in params.groups())
    if not 1 <= ln <= 30 or r < 1 or not 1 <= p <= MAX_P:
        raise ValueError(f"password hash: parameters ln={ln}, r={r}, p={p} are out of range")
    if 128 * r * (1 << ln) > MAX_MEMORY or 128 * r * (1 << ln) * p > MAX_WORK:
        raise ValueError(
            f"password hash: parameters ln={ln}, r={r}, p={p} cost more than this member allows"
        )
    salt = _unb64(parts[2], "salt")
    digest = _unb64(parts[3], "hash")
    if not 8 <= len(salt) <= 64:
        raise ValueError(f"password hash: salt of {len(salt)} bytes (8 to 64 expected)")
    if not 16 <= len(digest) <= 64:
        raise ValueError(f"password hash: hash of {len(digest)} bytes (16 to 64 expected)")
    return ScryptHash(ln, r, p, salt, digest)


def _scrypt(password: str, ln: int, r: int, p: int, salt: bytes, dklen: int) -> bytes:
    n = 1 << ln
    return hashlib.scrypt(
        password.encode("utf-8", "surrogatepass"),
        salt=salt,
        n=n,
        r=r,
        p=p,
        # OpenSSL wants room for 128*r*(N + p + 2) bytes; leave some slack.
        maxmem=128 * r * (n + p + 2) + (1 << 20),
        dklen=dklen,
    )


def control_character(password: str) -> int | None:
    """Index of the first control character (Unicode category Cc) in ``password``, or None.

    Why passwords may not hold them: scrypt keys its PBKDF2-HMAC-SHA256 with
    the password, and HMAC pads a key shorter than its block with NUL bytes,
    so ``"secret12"`` and ``"secret12\\0"`` derive the same hash. Newlines,
    tabs and other invisible characters are also how a password picks up a
    stray character from a file or a copy-paste that its owner cannot see.
    """
    for i, ch in enumerate(password):
        if unicodedata.category(ch) == "Cc":
            return i
    return None


def check_password(password: str) -> str:
    """``password`` if it may be stored; :class:`ValueError` saying why not."""
    if not isinstance(password, str):
        raise ValueError("the password must be text")
    if len(password) < 8:
        raise ValueError("the password is shorter than 8 characters; choose a longer one")
    if len(password) > MAX_PASSWORD_CHARS:
        raise ValueError(f"the password is longer than {MAX_PASSWORD_CHARS} characters")
    at = control_character(password)
    if at is not None:
        raise ValueError(
            f"the password holds a control character (U+{ord(password[at]):04X} at position "
            f"{at + 1}); use printable characters only: a NUL, newline or tab is invisible, "
            "and a trailing NUL would make two different passwords equal"
        )
    return password


def hash_password(
    password: str, *, ln: int = DEFAULT_LN, r: int = DEFAULT_R, p: int = DEFAULT_P
) -> str:
    """A new stored hash of ``password`` with a fresh random salt (slow: run it on a thread)."""
    salt = secrets.token_bytes(SALT_BYTES)
    digest = _scrypt(password, ln, r, p, salt, HASH_BYTES)
    return ScryptHash(ln, r, p, salt, digest).format()


def verify_password(stored: str, password: str) -> bool:
    """Whether ``password`` matches ``stored`` (slow: run it on a thread).

    Raises :class:`ValueError` when ``stored`` is not a valid hash.
    """
    h = parse(stored)
    if (
        not isinstance(password, str)
        or len(password) > MAX_PASSWORD_CHARS
        or control_character(password) is not None
    ):
        # No stored password holds a control character (check_password), so
        # "pw" + NUL must not match the hash of "pw" through HMAC's key padding.
        # Still pay the cost, so the answer's timing says nothing.
        dummy_verify("")
        return False
    got = _scrypt(password, h.ln, h.r, h.p, h.salt, len(h.digest))
    return hmac.compare_digest(got, h.digest)


#: A hash nobody's password matches: a random digest under a random salt.
_DUMMY = ScryptHash(
    DEFAULT_LN,
    DEFAULT_R,
    DEFAULT_P,
    secrets.token_bytes(SALT_BYTES),
    secrets.token_bytes(HASH_BYTES),
)


def dummy_verify(password: str) -> bool:
    """Do the work of a verification with default parameters; always False."""
    got = _scrypt(password[:MAX_PASSWORD_CHARS], _DUMMY.ln, _DUMMY.r, _DUMMY.p, _DUMMY.salt, 32)
    hmac.compare_digest(got, _DUMMY.digest)
    return False

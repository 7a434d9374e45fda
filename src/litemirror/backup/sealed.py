"""Sealed files: backup copies and archived journal segments encrypted at rest.

Theory of operation. A sealed file is a header and a run of AEAD chunks::

    header (52 bytes)
        magic    8   b"LMSEALED"
        version  1   1
        shift    1   log2 of the chunk size (16: 64 KiB of plaintext per chunk)
        reserved 2   0
        key id   8   a hash of the master key (see key_id), shown as 16 hex digits
        salt     32  random, one per file
    chunk i      AES-256-GCM(file key, nonce(i), plaintext[i], aad(header, i, final))

The file key is HKDF-SHA256(master key, salt): every file has its own key, so
the chunk index alone is a safe nonce (no nonce is ever used twice under one
key, however many files a master key seals). Every chunk but the last holds a
full chunk of plaintext; the last holds 0 .. chunk bytes and is sealed with
the *final* flag. The associated data of a chunk is the header, its index and
its final flag, so a reordered chunk, a chunk moved between files, a header
edited, or a file cut at a chunk boundary (its last chunk was not sealed as
final) all fail authentication. A file is read chunk by chunk: memory stays at
one chunk however large the file.

Pure: the random salt is handed in by the caller; the AEAD calls are
``cryptography``'s, a library, not I/O.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from litemirror.errors import BackupError

MAGIC = b"LMSEALED"
VERSION = 1
#: The manifest's ``encryption`` field is ``f"{SCHEME}:{key id}"``.
SCHEME = "aes-256-gcm-chunked-v1"
KEY_BYTES = 32
SALT_BYTES = 32
TAG_BYTES = 16
DEFAULT_SHIFT = 16
_HEADER = struct.Struct(">8sBBH8s32s")
HEADER_SIZE = _HEADER.size  # 52
_INFO = b"litemirror sealed file v1"


class SealedError(BackupError):
    """A sealed file cannot be opened: not sealed, damaged, or sealed with another key."""


@dataclass(frozen=True, slots=True)
class Key:
    """A 256-bit master key and its id (the id names it in headers and manifests)."""

    secret: bytes

    def __post_init__(self) -> None:
        if len(self.secret) != KEY_BYTES:
            raise BackupError(f"an encryption key is {KEY_BYTES} bytes, not {len(self.secret)}")

    @property
    def id(self) -> str:
        return key_id(self.secret)

    def __repr__(self) -> str:  # never print the secret
        return f"Key(id={self.id})"


def key_id(secret: bytes) -> str:
    """16 hex digits naming a key; a hash, so it reveals nothing of the key."""
    return hashlib.sha256(b"litemirror key id\0" + secret).hexdigest()[:16]


def parse_key(text: bytes, where: str) -> Key:
    """A key file's content: 64 hex digits (whitespace around them ignored)."""
    stripped = text.strip()
    try:
        secret = bytes.fromhex(stripped.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        secret = b""
    if len(secret) != KEY_BYTES:
        raise BackupError(
            f"{where} does not hold a key: it must hold {2 * KEY_BYTES} hex digits "
            f"({KEY_BYTES} random bytes); make one with `openssl rand -hex 32`"
        )
    return Key(secret)


def scheme_of(key: Key) -> str:
    """The manifest's ``encryption`` value for copies sealed with ``key``."""
    return f"{SCHEME}:{key.id}"


def parse_scheme(value: str) -> str:
    """The key id in a manifest's ``encryption`` value, or a BackupError."""
    scheme, _, kid = value.partition(":")
    if scheme != SCHEME or len(kid) != 16 or any(c not in "0123456789abcdef" for c in kid):
        raise BackupError(
            f"encryption {value!r} is not supported by this release (it reads {SCHEME}:<key id>)"
        )
    return kid


@dataclass(frozen=True, slots=True)
class Header:
    key_id: str
    salt: bytes
    shift: int = DEFAULT_SHIFT

    @property
    def chunk(self) -> int:
        return 1 << self.shift

    def encode(self) -> bytes:
        return _HEADER.pack(MAGIC, VERSION, self.shift, 0, bytes.fromhex(self.key_id), self.salt)


def is_sealed(head: bytes) -> bool:
    """Whether a file starting with ``head`` is a sealed file."""
    return head[: len(MAGIC)] == MAGIC


def decode_header(data: bytes, where: str) -> Header:
    if len(data) < HEADER_SIZE or not is_sealed(data):
        raise SealedError(f"{where} is not an encrypted litemirror file (no sealed-file header)")
    _, version, shift, _, kid, salt = _HEADER.unpack(data[:HEADER_SIZE])
    if version != VERSION:
        raise SealedError(
            f"{where} is sealed in format {version}; this release reads format {VERSION}"
        )
    if not 10 <= shift <= 24:
        raise SealedError(f"{where} has a damaged header (chunk shift {shift})")
    return Header(kid.hex(), salt, shift)


def nonce(index: int) -> bytes:
    """The 96-bit nonce of chunk ``index`` (unique: each file has its own key)."""
    return b"\0\0\0\0" + index.to_bytes(8, "big")


def associated_data(header: bytes, index: int, final: bool) -> bytes:
    """What each chunk authenticates besides its own bytes: header, position, finality."""
    return header + index.to_bytes(8, "big") + (b"\1" if final else b"\0")


def file_key(key: Key, salt: bytes) -> AESGCM:
    secret = HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=_INFO).derive(key.secret)
    return AESGCM(secret)


def sealed_size(plain: int, shift: int = DEFAULT_SHIFT) -> int:
    """Size of the sealed file of ``plain`` bytes."""
    chunks = max(1, -(-plain // (1 << shift)))
    return HEADER_SIZE + plain + chunks * TAG_BYTES


def plain_size(sealed: int, shift: int = DEFAULT_SHIFT) -> int:
    """Size of the plaintext of a sealed file of ``sealed`` bytes (-1: not a possible size)."""
    body = sealed - HEADER_SIZE
    if body < TAG_BYTES:
        return -1
    chunks = -(-body // ((1 << shift) + TAG_BYTES))
    return body - chunks * TAG_BYTES


class Sealer:
    """Seals a stream: ``update`` and ``finish`` return the bytes to write, in order."""

    def __init__(self, key: Key, salt: bytes, shift: int = DEFAULT_SHIFT) -> None:
        if len(salt) != SALT_BYTES:
            raise ValueError("salt must be 32 bytes")
        self._header = Header(key.id, salt, shift).encode()
        self._aead = file_key(key, salt)
        self._chunk = 1 << shift
        self._buf = bytearray()
        self._index = 0
        self._started = False
        self._done = False

    def update(self, data: bytes) -> bytes:
        assert not self._done, "update after finish"
        self._buf += data
        out = bytearray()
        if not self._started:
            out += self._header
            self._started = True
        # Keep at least one byte back: the last chunk must be sealed as final.
        while len(self._buf) > self._chunk:
            out += self._seal(bytes(self._buf[: self._chunk]), final=False)
            del self._buf[: self._chunk]
        return bytes(out)

    def finish(self) -> bytes:
        out = self.update(b"")
        self._done = True
        return out + self._seal(bytes(self._buf), final=True)

    def _seal(self, plain: bytes, *, final: bool) -> bytes:
        aad = associated_data(self._header, self._index, final)
        sealed = self._aead.encrypt(nonce(self._index), plain, aad)
        self._index += 1
        return sealed


class Opener:
    """Opens a sealed stream: feed it the file's bytes, take the plaintext, then ``finish``.

    ``keys`` are the keys that may have sealed it; the header's key id picks one.
    ``where`` names the file in errors.
    """

    def __init__(self, keys: dict[str, Key], where: str) -> None:
        self._keys = keys
        self._where = where
        self._buf = bytearray()
        self._header: bytes | None = None
        self._aead: AESGCM | None = None
        self._chunk = 0
        self._index = 0

    def update(self, data: bytes) -> bytes:
        self._buf += data
        if self._header is None:
            if len(self._buf) < HEADER_SIZE:
                return b""
            self._start(bytes(self._buf[:HEADER_SIZE]))
            del self._buf[:HEADER_SIZE]
        out = bytearray()
        size = self._chunk + TAG_BYTES
        while len(self._buf) > size:
            out += self._open(bytes(self._buf[:size]), final=False)
            del self._buf[:size]
        return bytes(out)

    def finish(self) -> bytes:
        if self._header is None:
            raise SealedError(f"{self._where} is cut short: it ends inside its header")
        if len(self._buf) < TAG_BYTES:
            raise SealedError(f"{self._where} is cut short: its last chunk is missing")
        out = self._open(bytes(self._buf), final=True)
        self._buf.clear()
        return out

    def _start(self, raw: bytes) -> None:
        header = decode_header(raw, self._where)
        key = self._keys.get(header.key_id)
        if key is None:
            given = ", ".join(sorted(self._keys)) or "none"
            raise SealedError(
                f"{self._where} is encrypted with key id {header.key_id}; the key(s) given "
                f"have id(s): {given}. Give the key file with id {header.key_id} "
                "(litemirror restore --key-file)"
            )
        self._header = raw
        self._aead = file_key(key, header.salt)
        self._chunk = header.chunk

    def _open(self, sealed: bytes, *, final: bool) -> bytes:
        assert self._aead is not None and self._header is not None
        aad = associated_data(self._header, self._index, final)
        try:
            plain = self._aead.decrypt(nonce(self._index), sealed, aad)
        except InvalidTag:
            raise SealedError(
                f"{self._where} is damaged or cut short: chunk {self._index} does not "
                "authenticate (a changed, reordered or missing chunk)"
            ) from None
        self._index += 1
        return plain


def open_bytes(data: bytes, keys: dict[str, Key], where: str) -> bytes:
    """The plaintext of a whole sealed file held in memory (tests, small files)."""
    opener = Opener(keys, where)
    return opener.update(data) + opener.finish()


def seal_bytes(data: bytes, key: Key, salt: bytes, shift: int = DEFAULT_SHIFT) -> bytes:
    sealer = Sealer(key, salt, shift)
    return sealer.update(data) + sealer.finish()

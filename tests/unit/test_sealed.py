"""The sealed-file format: round trips, and every kind of damage refused (no I/O)."""

from __future__ import annotations

import io

import pytest

from litemirror.backup import sealed as sd
from litemirror.errors import BackupError

KEY = sd.Key(bytes(range(32)))
OTHER = sd.Key(bytes(32))
SALT = b"s" * 32
SHIFT = 10  # 1 KiB chunks: many chunks from small inputs
CHUNK = 1 << SHIFT


def seal(data: bytes, key: sd.Key = KEY, salt: bytes = SALT) -> bytes:
    return sd.seal_bytes(data, key, salt, SHIFT)


def open_(data: bytes, keys: dict[str, sd.Key] | None = None) -> bytes:
    return sd.open_bytes(data, keys if keys is not None else {KEY.id: KEY}, "f")


@pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK, 3 * CHUNK + 17])
def test_round_trip_and_sizes(size: int) -> None:
    data = bytes(i % 251 for i in range(size))
    sealed = seal(data)
    assert len(sealed) == sd.sealed_size(size, SHIFT)
    assert sd.plain_size(len(sealed), SHIFT) == size
    assert open_(sealed) == data
    assert sd.is_sealed(sealed)
    assert data[:16] not in sealed[sd.HEADER_SIZE :] or size < 16


def test_streaming_in_odd_pieces_gives_the_same_file() -> None:
    data = bytes(i % 253 for i in range(5 * CHUNK + 3))
    sealer = sd.Sealer(KEY, SALT, SHIFT)
    out = b"".join(sealer.update(data[i : i + 333]) for i in range(0, len(data), 333))
    out += sealer.finish()
    assert out == seal(data)
    opener = sd.Opener({KEY.id: KEY}, "f")
    plain = b"".join(opener.update(out[i : i + 97]) for i in range(0, len(out), 97))
    assert plain + opener.finish() == data


def test_header_names_the_key_and_each_file_differs() -> None:
    sealed = seal(b"x" * 100)
    header = sd.decode_header(sealed, "f")
    assert (header.key_id, header.salt, header.shift) == (KEY.id, SALT, SHIFT)
    assert seal(b"x" * 100, salt=b"t" * 32)[sd.HEADER_SIZE :] != sealed[sd.HEADER_SIZE :]
    assert KEY.id != OTHER.id and len(KEY.id) == 16
    assert "secret" not in repr(KEY) and KEY.secret.hex() not in repr(KEY)


def test_wrong_or_missing_key_names_the_key_id() -> None:
    sealed = seal(b"data")
    for keys in ({OTHER.id: OTHER}, {}):
        with pytest.raises(sd.SealedError, match=f"encrypted with key id {KEY.id}"):
            open_(sealed, keys)


def test_a_key_under_a_forged_id_does_not_open_it() -> None:
    with pytest.raises(sd.SealedError, match="does not authenticate"):
        open_(seal(b"data"), {KEY.id: OTHER})


def _chunks(sealed: bytes) -> list[bytes]:
    body = sealed[sd.HEADER_SIZE :]
    size = CHUNK + sd.TAG_BYTES
    return [body[i : i + size] for i in range(0, len(body), size)]


DATA = bytes(i % 241 for i in range(3 * CHUNK + 5))


def _flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 1]) + data[at + 1 :]


@pytest.mark.parametrize(
    ("name", "damage", "needle"),
    [
        ("a flipped ciphertext bit", lambda s: _flip(s, sd.HEADER_SIZE + 5), "chunk 0"),
        ("a flipped tag bit", lambda s: _flip(s, len(s) - 1), "chunk 3"),
        ("a flipped salt bit", lambda s: _flip(s, sd.HEADER_SIZE - 1), "chunk 0"),
        ("a changed shift", lambda s: s[:9] + bytes([11]) + s[10:], "chunk 0"),
        ("the last chunk cut off", lambda s: s[: sd.HEADER_SIZE + 3 * (CHUNK + 16)], "chunk 2"),
        ("the last two chunks cut", lambda s: s[: sd.HEADER_SIZE + 2 * (CHUNK + 16)], "chunk 1"),
        ("cut inside a chunk", lambda s: s[:-3], "chunk 3"),
        ("cut to the header", lambda s: s[: sd.HEADER_SIZE], "last chunk is missing"),
        ("cut inside the header", lambda s: s[:20], "inside its header"),
        (
            "two chunks swapped",
            lambda s: (
                s[: sd.HEADER_SIZE] + b"".join([_chunks(s)[1], _chunks(s)[0], *_chunks(s)[2:]])
            ),
            "chunk 0",
        ),
        (
            "a chunk repeated",
            lambda s: s[: sd.HEADER_SIZE] + _chunks(s)[0] * 2 + b"".join(_chunks(s)[2:]),
            "chunk 1",
        ),
        ("a chunk appended", lambda s: s + _chunks(s)[0], "chunk 3"),
        ("a version from later", lambda s: s[:8] + b"\2" + s[9:], "format 2"),
        ("not sealed at all", lambda s: b"SQLite format 3\0" + s[16:], "not an encrypted"),
    ],
)
def test_damage_is_refused(name: str, damage: object, needle: str) -> None:
    sealed = seal(DATA)
    assert callable(damage)
    with pytest.raises(sd.SealedError, match=needle):
        open_(damage(sealed))


def test_chunks_from_another_file_under_the_same_key_are_refused() -> None:
    a, b = seal(DATA), seal(DATA, salt=b"t" * 32)
    mixed = a[: sd.HEADER_SIZE] + _chunks(b)[0] + b"".join(_chunks(a)[1:])
    with pytest.raises(sd.SealedError, match="chunk 0"):
        open_(mixed)


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        (b"ab" * 32, True),
        (b"  " + b"AB" * 32 + b"\n", True),
        (b"ab" * 31, False),
        (b"ab" * 33, False),
        (b"xy" * 32, False),
        (bytes(32), False),
        (b"\xff" * 64, False),
    ],
)
def test_parse_key(text: bytes, ok: bool) -> None:
    if ok:
        assert sd.parse_key(text, "k").secret == b"\xab" * 32
    else:
        with pytest.raises(BackupError, match="k does not hold a key"):
            sd.parse_key(text, "k")


def test_scheme_round_trip_and_unknown_schemes() -> None:
    assert sd.parse_scheme(sd.scheme_of(KEY)) == KEY.id
    for bad in ("rot13:" + KEY.id, sd.SCHEME + ":xyz", sd.SCHEME):
        with pytest.raises(BackupError, match="not supported"):
            sd.parse_scheme(bad)


def test_sealed_reader_reads_forward_in_any_pieces() -> None:
    from litemirror.backup.sealed_io import SealedReader

    data = bytes(i % 239 for i in range(70_000))  # two 64 KiB chunks
    blob = sd.seal_bytes(data, KEY, SALT)
    reader = SealedReader(io.BytesIO(blob), {KEY.id: KEY}, "f", len(blob))
    assert reader.size == len(data)
    assert reader.read(40) == data[:40]
    assert reader.seek(40) == 40
    reader.seek(1000)
    assert reader.read(65_536) == data[1000:66_536]
    assert reader.read() == data[66_536:]
    assert reader.read(10) == b""
    with pytest.raises(sd.SealedError, match="forward only"):
        reader.seek(0)
    with pytest.raises(sd.SealedError, match=f"key id {KEY.id}"):
        SealedReader(io.BytesIO(blob), {OTHER.id: OTHER}, "f", len(blob))
    cut = blob[: sd.HEADER_SIZE + 65_536 + 16]
    reader = SealedReader(io.BytesIO(cut), {KEY.id: KEY}, "f", len(cut))
    with pytest.raises(sd.SealedError, match="chunk 0"):
        reader.read()

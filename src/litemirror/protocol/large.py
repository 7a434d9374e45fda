"""Large client requests: what a frame is before it is read, and big Execute frames in pieces.

Theory of operation
-------------------
Decoding a frame is one call into msgspec that holds Python's global lock
from start to end, whatever thread makes it. A frame of a few MiB holding
millions of small values (an executemany() parameter list) takes seconds to
decode, and nothing else in the process runs meanwhile: not the event loop,
not the heartbeats that keep the backup from taking over. So:

* :func:`peek_tag` reads a frame's kind from its first bytes, so the member
  can hold each kind (and each role) to its own size limit from the frame
  header, before the body is buffered or decoded.
* :func:`decode_execute` reads a large ``Execute`` frame in pieces, on a
  worker thread: a walk over the MessagePack structure in Python (which
  lets other threads run between its steps) finds where each field ends;
  the fields other than ``many`` are then decoded by msgspec, bounded
  because ``params`` holds at most :data:`MAX_PARAMS` plain values; and
  ``many`` becomes :class:`ParamSets`, whose sets are decoded one at a time
  while the statement runs.

Every value of a parameter set must be a SQLite value (nil, boolean,
integer, float, string, binary); anything else makes the request malformed
(:class:`~litemirror.errors.ProtocolError`), as the one-piece decoder says.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Any

import msgspec

from litemirror.errors import ProtocolError

from . import messages as m

#: Bytes of a frame's body that :func:`peek_tag` needs (map header, "t", a short tag).
PEEK_BYTES = 24
#: Most values one parameter set may hold: SQLite's own limit on bound parameters.
MAX_PARAMS = 32766

_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
#: Bytes taken by each type byte whose size does not depend on what follows (0: not fixed).
_FIXED = bytearray(256)
for _b in range(0x00, 0x80):
    _FIXED[_b] = 1  # positive fixint
for _b in range(0xE0, 0x100):
    _FIXED[_b] = 1  # negative fixint
for _b, _n in ((0xC0, 1), (0xC2, 1), (0xC3, 1), (0xCA, 5), (0xCB, 9), (0xCC, 2), (0xCD, 3),
               (0xCE, 5), (0xCF, 9), (0xD0, 2), (0xD1, 3), (0xD2, 5), (0xD3, 9)):  # fmt: skip
    _FIXED[_b] = _n
_SET_DECODER: msgspec.msgpack.Decoder[list[Any] | dict[str, Any]] = msgspec.msgpack.Decoder(
    list[Any] | dict[str, Any]
)
_EXECUTE_DECODER: msgspec.msgpack.Decoder[m.Execute] = msgspec.msgpack.Decoder(m.Execute)


def peek_tag(prefix: bytes) -> str | None:
    """The tag of a message from the first bytes of its frame body; None if unreadable.

    Messages are maps whose first key is ``t``, the tag (msgspec writes it
    first). A frame that does not open so gets the smallest size limit.
    """
    try:
        head = prefix[0]
        if 0x80 <= head <= 0x8F:
            pos = 1
        elif head == 0xDE:
            pos = 3
        elif head == 0xDF:
            pos = 5
        else:
            return None
        if prefix[pos : pos + 2] != b"\xa1t":
            return None
        pos += 2
        kind = prefix[pos]
        if 0xA0 <= kind <= 0xBF:
            n, pos = kind - 0xA0, pos + 1
        elif kind == 0xD9:
            n, pos = prefix[pos + 1], pos + 2
        else:
            return None
        tag = prefix[pos : pos + n]
        return tag.decode("ascii") if len(tag) == n else None
    except (IndexError, UnicodeDecodeError):
        return None


class _Walk:
    """A cursor over MessagePack bytes that skips values without making them."""

    __slots__ = ("buf", "end")

    def __init__(self, buf: bytes | memoryview, end: int) -> None:
        self.buf = buf
        self.end = end

    def need(self, pos: int) -> None:
        if pos > self.end:
            raise ProtocolError("malformed frame: it ends in the middle of a value")

    def length(
        self, pos: int, small: int, base: int, one: int, two: int, four: int
    ) -> tuple[int, int]:
        """(count, position after the header) of a str/bin/array/map header at ``pos``."""
        b = self.buf[pos]
        if small and base <= b < base + small:
            return b - base, pos + 1
        if b == one:
            self.need(pos + 2)
            return self.buf[pos + 1], pos + 2
        if b == two:
            self.need(pos + 3)
            return _U16.unpack_from(self.buf, pos + 1)[0], pos + 3
        if b == four:
            self.need(pos + 5)
            return _U32.unpack_from(self.buf, pos + 1)[0], pos + 5
        raise ProtocolError(f"malformed frame: unexpected MessagePack type 0x{b:02x}")

    def container(self, pos: int) -> tuple[bool, int, int]:
        """(is a map, count, position after the header) of an array or map at ``pos``."""
        self.need(pos + 1)
        b = self.buf[pos]
        if 0x90 <= b <= 0x9F or b in (0xDC, 0xDD):
            n, at = self.length(pos, 16, 0x90, -1, 0xDC, 0xDD)
            return False, n, at
        if 0x80 <= b <= 0x8F or b in (0xDE, 0xDF):
            n, at = self.length(pos, 16, 0x80, -1, 0xDE, 0xDF)
            return True, n, at
        raise ProtocolError(
            f"malformed request: a parameter set must be a list or a map, not MessagePack type "
            f"0x{b:02x}"
        )

    def scalar(self, pos: int) -> int:
        """End of a SQLite value at ``pos`` (nil, bool, int, float, str, bin); else refuse."""
        self.need(pos + 1)
        b = self.buf[pos]
        size = _FIXED[b]
        if size:
            end = pos + size
        elif 0xA0 <= b <= 0xBF or 0xD9 <= b <= 0xDB:
            n, at = self.length(pos, 32, 0xA0, 0xD9, 0xDA, 0xDB)
            end = at + n
        elif 0xC4 <= b <= 0xC6:
            n, at = self.length(pos, 0, 0, 0xC4, 0xC5, 0xC6)
            end = at + n
        else:
            raise ProtocolError(
                "malformed request: a parameter is not a SQLite value (use None, int, float, "
                "str or bytes)"
            )
        self.need(end)
        return end

    def param_set(self, pos: int) -> int:
        """End of one parameter set at ``pos``: a list or map of at most MAX_PARAMS values."""
        is_map, n, pos = self.container(pos)
        if n > MAX_PARAMS:
            raise ProtocolError(
                f"malformed request: a parameter set of {n} values is more than SQLite binds "
                f"({MAX_PARAMS})"
            )
        for _ in range(n):
            if is_map:
                pos = self.scalar(pos)  # the name (checked as a str when decoded)
            pos = self.scalar(pos)
        return pos

    def any(self, pos: int, depth: int = 0) -> int:
        """End of any value at ``pos`` (for the fields decoded whole afterwards)."""
        if depth > 32:
            raise ProtocolError("malformed frame: values nested too deeply")
        self.need(pos + 1)
        b = self.buf[pos]
        if 0x80 <= b <= 0x9F or 0xDC <= b <= 0xDF:
            is_map, n, pos = self.container(pos)
            for _ in range(n * 2 if is_map else n):
                pos = self.any(pos, depth + 1)
            return pos
        if 0xC7 <= b <= 0xC9 or 0xD4 <= b <= 0xD8:
            raise ProtocolError("malformed frame: MessagePack extension types are not used")
        return self.scalar(pos)


class ParamSets:
    """The parameter sets of a large executemany(), decoded one at a time as they run.

    Iterable any number of times (a job may run again, see
    ``Database._run_again``); each set is checked like a small request's.
    """

    __slots__ = ("_body", "_count", "_start")

    def __init__(self, body: bytes, start: int, count: int) -> None:
        self._body = body
        self._start = start
        self._count = count

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[list[Any] | dict[str, Any]]:
        view = memoryview(self._body)
        walk = _Walk(view, len(view))
        pos = self._start
        for n in range(self._count):
            end = walk.param_set(pos)
            try:
                params = _SET_DECODER.decode(view[pos:end])
                m.check_set(params, n)
            # ValueError covers UnicodeDecodeError (a str that is not UTF-8).
            except (msgspec.DecodeError, msgspec.ValidationError, ValueError) as exc:
                raise ProtocolError(f"malformed request: {exc}") from None
            yield params
            pos = end


def decode_execute(body: bytes) -> tuple[m.Execute, ParamSets | None]:
    """A large ``Execute`` frame: the message without ``many``, and ``many`` as ParamSets.

    Runs on a worker thread; its cost is a walk over the frame, and msgspec
    never decodes more than the statement text and one bounded set at a time.
    """
    view = memoryview(body)
    walk = _Walk(view, len(view))
    is_map, fields, pos = walk.container(0)
    if not is_map:
        raise ProtocolError("malformed frame: a message is a map")
    kept: list[memoryview] = []
    many: ParamSets | None = None
    for _ in range(fields):
        key_end = walk.scalar(pos)
        key = bytes(view[pos:key_end])
        walk.need(key_end + 1)
        if key == b"\xa4many" and view[key_end] != 0xC0:
            is_map, count, first = walk.container(key_end)
            if is_map:
                raise ProtocolError("malformed request: many must be a list of parameter sets")
            end = first
            for _ in range(count):
                end = walk.param_set(end)
            many = ParamSets(body, first, count)
        else:
            if key == b"\xa6params" and view[key_end] != 0xC0:
                end = walk.param_set(key_end)
            else:
                end = walk.any(key_end)
            kept.append(view[pos:end])
        pos = end
    if pos != len(view):
        raise ProtocolError("malformed frame: bytes after the message")
    header = bytes([0x80 + len(kept)]) if len(kept) < 16 else b"\xde" + _U16.pack(len(kept))
    try:
        message = _EXECUTE_DECODER.decode(header + b"".join(kept))
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"malformed frame: {exc}") from exc
    try:
        m.check_params(message.params)
    except ValueError as exc:
        raise ProtocolError(f"malformed request: {exc}") from None
    return message, many

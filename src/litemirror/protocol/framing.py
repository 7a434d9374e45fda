"""Length-prefixed frames: bytes in, messages out; messages in, bytes out.

A frame is a 4-byte big-endian unsigned length followed by that many bytes
of MessagePack. The decoder is sans-IO (like h11): feed it whatever bytes
arrived with :meth:`FrameDecoder.feed`, then take complete messages with
:meth:`FrameDecoder.next_message` until it returns ``None``.

A length above ``max_frame`` is refused *before* buffering the body, so a
peer cannot make us allocate more than the limit. A finer limit may depend
on what the frame is: an *admission* check (:meth:`FrameDecoder.set_admission`)
sees each frame's length and its first bytes as soon as they arrive, before
the rest of the body is buffered, and may refuse it by raising. A body that
does not decode as a known message raises :class:`~litemirror.errors.ProtocolError`;
the caller answers with an error and closes, since the stream position can
no longer be trusted after a bad frame.

:meth:`FrameDecoder.next_body` hands out a complete body undecoded, for a
caller that decodes a large one elsewhere (:mod:`.large`).

:func:`read_message` (and :func:`read_body`, for a body decoded elsewhere)
is the one read loop of every connection's shell: it is handed the stream's
``read`` (so this module still does no I/O of its own) and feeds the decoder
until a frame is complete. How the end of the stream is reported is the
caller's choice (``closed``), so each shell keeps its own error for a lost peer.
"""

from __future__ import annotations

import struct
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar, overload

import msgspec

from litemirror.errors import FrameTooLargeError, ProtocolError

from .messages import AnyMessage

HEADER = struct.Struct(">I")
DEFAULT_MAX_FRAME = 128 * 1024 * 1024

_encoder = msgspec.msgpack.Encoder()

T = TypeVar("T")


def encode(message: msgspec.Struct) -> bytes:
    """Return one complete frame carrying ``message``."""
    body = _encoder.encode(message)
    return HEADER.pack(len(body)) + body


#: Admission check: (frame length, first bytes of its body) -> None, or raise to refuse.
Admission = Callable[[int, bytes], None]


class FrameDecoder(Generic[T]):
    """Incremental decoder for frames of message type ``T``."""

    def __init__(self, kind: type[T] | object = AnyMessage, max_frame: int = DEFAULT_MAX_FRAME):
        self._decoder: msgspec.msgpack.Decoder[T] = msgspec.msgpack.Decoder(kind)
        self._max = max_frame
        self._buf = bytearray()
        self._admit: Admission | None = None
        self._peek = 0
        #: The frame at the head of the buffer passed the admission check.
        self._admitted = False

    def set_kind(self, kind: type[T] | object, max_frame: int | None = None) -> None:
        """Decode the following frames as ``kind`` (after a handshake picked the protocol).

        ``max_frame`` raises or lowers the frame limit from here on: a
        connection is held to a small limit until it has said who it is.
        """
        self._decoder = msgspec.msgpack.Decoder(kind)
        if max_frame is not None:
            self._max = max_frame

    def set_admission(self, admit: Admission | None, peek: int = 0) -> None:
        """Ask ``admit(length, first peek bytes of the body)`` for every frame from here on.

        It is asked once per frame, as soon as the header and ``peek`` bytes
        (or the whole body, if shorter) have arrived, before more is buffered.
        """
        self._admit = admit
        self._peek = peek
        self._admitted = False
        self._check_head()

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes) -> None:
        self._buf += data
        self._check_head()

    def _check_head(self) -> None:
        if len(self._buf) < HEADER.size:
            return
        (length,) = HEADER.unpack_from(self._buf)
        if length > self._max:
            raise FrameTooLargeError(
                f"frame of {length} bytes exceeds the limit of {self._max} bytes; "
                "the connection is closed"
            )
        if self._admit is not None and not self._admitted:
            want = min(length, self._peek)
            if len(self._buf) >= HEADER.size + want:
                self._admit(length, bytes(self._buf[HEADER.size : HEADER.size + want]))
                self._admitted = True

    def next_body(self) -> bytes | None:
        """The next complete frame's body, undecoded; None until one has arrived."""
        if len(self._buf) < HEADER.size:
            return None
        (length,) = HEADER.unpack_from(self._buf)
        self._check_head()
        end = HEADER.size + length
        if len(self._buf) < end:
            return None
        body = bytes(self._buf[HEADER.size : end])
        del self._buf[:end]
        self._admitted = False
        self._check_head()
        return body

    def decode(self, body: bytes) -> T:
        """Decode one frame body as ``T``; ProtocolError if it is not one."""
        try:
            return self._decoder.decode(body)
        # msgspec raises UnicodeDecodeError for a str that is not UTF-8 and
        # RecursionError for absurd nesting (both found by fuzzing): malformed too.
        except (
            msgspec.DecodeError,
            msgspec.ValidationError,
            UnicodeDecodeError,
            RecursionError,
        ) as exc:
            raise ProtocolError(f"malformed frame: {exc}") from exc

    def next_message(self) -> T | None:
        body = self.next_body()
        return None if body is None else self.decode(body)


#: Read up to n bytes, ``b""`` at the end of the stream (``asyncio.StreamReader.read``).
Read = Callable[[int], Awaitable[bytes]]

#: Makes the error to raise when the stream ends (the caller's own word for a lost peer).
Closed = Callable[[], BaseException]


@overload
async def read_body(
    decoder: FrameDecoder[T], read: Read, chunk: int = ..., *, closed: None = None
) -> bytes | None: ...
@overload
async def read_body(
    decoder: FrameDecoder[T], read: Read, chunk: int = ..., *, closed: Closed
) -> bytes: ...
async def read_body(
    decoder: FrameDecoder[T], read: Read, chunk: int = 64 * 1024, *, closed: Closed | None = None
) -> bytes | None:
    """The next frame's body, undecoded, reading ``chunk`` bytes at a time as needed.

    When the stream ends: without ``closed``, None between frames and
    ProtocolError in the middle of one (the peer went away or cut the frame
    short); with ``closed``, ``closed()`` is raised in both cases, for a
    caller to whom any end of the stream means the same (the peer is gone)
    or who looks at :attr:`FrameDecoder.buffered` itself.
    """
    while True:
        body = decoder.next_body()
        if body is not None:
            return body
        data = await read(chunk)
        if not data:
            if closed is not None:
                raise closed()
            if decoder.buffered:
                raise ProtocolError("connection closed in the middle of a frame")
            return None
        decoder.feed(data)


@overload
async def read_message(
    decoder: FrameDecoder[T], read: Read, chunk: int = ..., *, closed: None = None
) -> T | None: ...
@overload
async def read_message(
    decoder: FrameDecoder[T], read: Read, chunk: int = ..., *, closed: Closed
) -> T: ...
async def read_message(
    decoder: FrameDecoder[T], read: Read, chunk: int = 64 * 1024, *, closed: Closed | None = None
) -> T | None:
    """The next message, reading ``chunk`` bytes at a time as needed.

    The end of the stream is handled as by :func:`read_body`: None between
    frames and ProtocolError in the middle of one, or ``closed()`` raised in
    both cases when it is given.
    """
    body = await read_body(decoder, read, chunk, closed=closed)
    return None if body is None else decoder.decode(body)

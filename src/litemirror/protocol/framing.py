"""Length-prefixed frames: bytes in, messages out; messages in, bytes out.

A frame is a 4-byte big-endian unsigned length followed by that many bytes
of MessagePack. The decoder is sans-IO (like h11): feed it whatever bytes
arrived with :meth:`FrameDecoder.feed`, then take complete messages with
:meth:`FrameDecoder.next_message` until it returns ``None``.

A length above ``max_frame`` is refused *before* buffering the body, so a
peer cannot make us allocate more than the limit. A body that does not
decode as a known message raises :class:`~litemirror.errors.ProtocolError`;
the caller answers with an error and closes, since the stream position can
no longer be trusted after a bad frame.
"""

from __future__ import annotations

import struct
from typing import Generic, TypeVar

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


class FrameDecoder(Generic[T]):
    """Incremental decoder for frames of message type ``T``."""

    def __init__(self, kind: type[T] | object = AnyMessage, max_frame: int = DEFAULT_MAX_FRAME):
        self._decoder: msgspec.msgpack.Decoder[T] = msgspec.msgpack.Decoder(kind)
        self._max = max_frame
        self._buf = bytearray()

    def set_kind(self, kind: type[T] | object, max_frame: int | None = None) -> None:
        """Decode the following frames as ``kind`` (after a handshake picked the protocol).

        ``max_frame`` raises or lowers the frame limit from here on: a
        connection is held to a small limit until it has said who it is.
        """
        self._decoder = msgspec.msgpack.Decoder(kind)
        if max_frame is not None:
            self._max = max_frame

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes) -> None:
        self._buf += data
        if len(self._buf) >= HEADER.size:
            (length,) = HEADER.unpack_from(self._buf)
            if length > self._max:
                raise FrameTooLargeError(
                    f"frame of {length} bytes exceeds the limit of {self._max} bytes; "
                    "the connection is closed"
                )

    def next_message(self) -> T | None:
        if len(self._buf) < HEADER.size:
            return None
        (length,) = HEADER.unpack_from(self._buf)
        if length > self._max:
            raise FrameTooLargeError(
                f"frame of {length} bytes exceeds the limit of {self._max} bytes; "
                "the connection is closed"
            )
        end = HEADER.size + length
        if len(self._buf) < end:
            return None
        body = bytes(self._buf[HEADER.size : end])
        del self._buf[:end]
        if len(self._buf) >= HEADER.size:
            (nxt,) = HEADER.unpack_from(self._buf)
            if nxt > self._max:
                raise FrameTooLargeError(
                    f"frame of {nxt} bytes exceeds the limit of {self._max} bytes; "
                    "the connection is closed"
                )
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

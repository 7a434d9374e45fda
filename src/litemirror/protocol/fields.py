"""Bounded field types shared by every message of the wire protocol.

Theory of operation
-------------------
Every frame is parsed before its sender is authenticated, and the frame
limit alone bounds a field only loosely (128 MiB by default). These types
put a bound on each field where one makes sense, so the decoder refuses an
oversized name, a negative LSN or a huge argument map as a malformed frame
(:class:`~litemirror.errors.ProtocolError`) instead of handing it on. They
are checked when a frame is *decoded*; building a message does not check
them, so each bound is set well above what a legitimate sender produces
(names are checked exactly, shape and all, by
:mod:`litemirror.protocol.handshake`).

Fields left unbounded are the ones the frame limit already bounds best:
SQLite values (parameters, rows), journal records and base-copy chunks,
status maps and error messages sent by a member.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

#: Mirror (≤ 15 characters in the config), member (≤ 32) and database (≤ 64) names.
NAME_MAX = 64
#: A user name and a password as a client sends them in ``Hello``.
USER_MAX = 128
PASSWORD_MAX = 1024
#: Short words from a fixed set sent as text: member kind, failover state,
#: role, stream mode, compression, acknowledgement level.
WORD_MAX = 32
#: "host:port" with the longest DNS name (253) and an IPv6 literal in brackets.
ADDRESS_MAX = 300
#: One sentence written by a member or the arbiter (a refusal reason).
SENTENCE_MAX = 4096
#: The text of one statement or script: what the default frame limit allows,
#: and no more when an operator raises ``limits.max_frame_bytes``.
SQL_MAX = 128 * 1024 * 1024
#: Entries in an admin request's argument map (the actions take at most a few).
ARGS_MAX = 64

Name = Annotated[str, msgspec.Meta(max_length=NAME_MAX)]
User = Annotated[str, msgspec.Meta(max_length=USER_MAX)]
Password = Annotated[str, msgspec.Meta(max_length=PASSWORD_MAX)]
Word = Annotated[str, msgspec.Meta(max_length=WORD_MAX)]
Address = Annotated[str, msgspec.Meta(max_length=ADDRESS_MAX)]
Sentence = Annotated[str, msgspec.Meta(max_length=SENTENCE_MAX)]
Sql = Annotated[str, msgspec.Meta(max_length=SQL_MAX)]
#: A protocol version number.
Version = Annotated[int, msgspec.Meta(ge=0, le=0xFFFF)]
#: LSNs, epochs, sequence numbers, request ids, offsets and sizes: never negative.
Count = Annotated[int, msgspec.Meta(ge=0)]
#: An xxh3_64 hex digest (16 characters), or "" when there is none.
Digest = Annotated[str, msgspec.Meta(max_length=64)]

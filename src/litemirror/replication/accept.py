"""Whether a primary accepts a member's replication hello (pure).

A member opens replication with a ``ReplHello`` naming itself, its kind, its
mirror and the newest epoch it has seen. The primary streams to it only when
all of these hold, checked in this order (the first that fails is the reason
given, so a member of another mirror hears that, not that its name is
unknown):

1. it speaks this replication protocol version;
2. it belongs to this mirror;
3. its name is in this mirror's configuration (the caller re-reads the
   configuration once on :attr:`Refusal.UNKNOWN_MEMBER` and asks again: a
   member may have been added while the mirror runs);
4. it is not this member itself;
5. it is configured as the kind it says it is;
6. no member of that name is connected already (a duplicate name, or a second
   process on the same data);
7. this member is primary;
8. it has not seen an epoch newer than this primary's (this primary was
   deposed and does not know it yet).
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from litemirror.protocol.replication import REPL_VERSION, ReplHello


class Refusal(enum.Enum):
    VERSION = "version"
    MIRROR = "mirror"
    UNKNOWN_MEMBER = "unknown member"
    SELF = "self"
    KIND = "kind"
    DUPLICATE = "duplicate"
    NOT_PRIMARY = "not primary"
    NEWER_EPOCH = "newer epoch"


@dataclass(frozen=True, slots=True)
class Verdict:
    #: None: accepted.
    refused: Refusal | None
    #: Why it is refused (empty when accepted).
    reason: str = ""

    @property
    def accepted(self) -> bool:
        return self.refused is None


ACCEPTED = Verdict(None)


def accept_hello(
    hello: ReplHello,
    *,
    mirror: str,
    kinds: Mapping[str, str],
    me: str,
    connected: Collection[str],
    role: str,
    epoch: int,
    version: int = REPL_VERSION,
) -> Verdict:
    """Whether this primary streams to the member that sent ``hello``.

    ``kinds`` maps every configured member's name to its kind; ``connected``
    are the members streaming from this one now; ``role`` and ``epoch`` are
    this member's.
    """
    h = hello
    if h.version != version:
        return Verdict(
            Refusal.VERSION, f"replication protocol version {h.version} is not {version}"
        )
    if h.mirror != mirror:
        return Verdict(
            Refusal.MIRROR, f"member belongs to mirror {h.mirror!r}, this is mirror {mirror!r}"
        )
    if h.member not in kinds:
        return Verdict(
            Refusal.UNKNOWN_MEMBER,
            f"no member named {h.member!r} in this mirror's configuration",
        )
    if h.member == me:
        return Verdict(Refusal.SELF, f"member {h.member!r} is this member itself")
    if kinds[h.member] != h.kind:
        return Verdict(
            Refusal.KIND, f"member {h.member!r} is configured as {kinds[h.member]}, not {h.kind}"
        )
    if h.member in connected:
        return Verdict(
            Refusal.DUPLICATE,
            f"member {h.member!r} is already connected (duplicate member "
            "name, or a second process with the same data)",
        )
    if role != "primary":
        return Verdict(Refusal.NOT_PRIMARY, f"this member is {role}, not primary")
    if h.last_epoch > epoch:
        return Verdict(
            Refusal.NEWER_EPOCH,
            f"member {h.member!r} has seen epoch {h.last_epoch}, newer than this primary's {epoch}",
        )
    return ACCEPTED

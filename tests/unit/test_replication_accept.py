"""Whether a primary accepts a replication hello: a table of hellos and primaries."""

from __future__ import annotations

import pytest

from litemirror.protocol.replication import REPL_VERSION, ReplHello
from litemirror.replication.accept import Refusal, accept_hello

KINDS = {"a": "failover", "b": "failover", "dr1": "dr", "rep": "reporting"}


def hello(**kw: object) -> ReplHello:
    base: dict[str, object] = {
        "version": REPL_VERSION,
        "mirror": "m",
        "member": "b",
        "kind": "failover",
        "last_lsn": 10,
        "last_epoch": 3,
    }
    base.update(kw)
    return ReplHello(**base)  # type: ignore[arg-type]


PRIMARY: dict[str, object] = {"role": "primary", "epoch": 3, "connected": ()}

CASES: list[tuple[str, ReplHello, dict[str, object], Refusal | None, str]] = [
    ("the backup at the same epoch", hello(), {}, None, ""),
    ("a member at an older epoch", hello(last_epoch=1), {}, None, ""),
    ("a dr member", hello(member="dr1", kind="dr"), {}, None, ""),
    ("another protocol version", hello(version=REPL_VERSION + 1), {}, Refusal.VERSION,
     f"replication protocol version {REPL_VERSION + 1} is not {REPL_VERSION}"),
    ("another mirror", hello(mirror="other"), {}, Refusal.MIRROR,
     "member belongs to mirror 'other', this is mirror 'm'"),
    ("another mirror wins over an unknown name", hello(mirror="other", member="zz"), {},
     Refusal.MIRROR, "mirror 'other'"),
    ("an unknown member", hello(member="zz"), {}, Refusal.UNKNOWN_MEMBER,
     "no member named 'zz' in this mirror's configuration"),
    ("this member itself", hello(member="a"), {}, Refusal.SELF, "'a' is this member itself"),
    ("the wrong kind", hello(member="dr1"), {}, Refusal.KIND,
     "member 'dr1' is configured as dr, not failover"),
    ("already connected", hello(), {"connected": ("b",)}, Refusal.DUPLICATE,
     "member 'b' is already connected"),
    ("this member is a backup", hello(), {"role": "backup"}, Refusal.NOT_PRIMARY,
     "this member is backup, not primary"),
    ("a member that saw a newer epoch", hello(last_epoch=4), {}, Refusal.NEWER_EPOCH,
     "member 'b' has seen epoch 4, newer than this primary's 3"),
    ("duplicate is told before not-primary", hello(), {"connected": ("b",), "role": "waiting"},
     Refusal.DUPLICATE, "already connected"),
    ("not-primary is told before a newer epoch", hello(last_epoch=9), {"role": "backup"},
     Refusal.NOT_PRIMARY, "not primary"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("why", "h", "primary", "refused", "reason"), CASES, ids=[c[0] for c in CASES]
)
def test_accept(
    why: str, h: ReplHello, primary: dict[str, object], refused: Refusal | None, reason: str
) -> None:
    facts = {**PRIMARY, **primary}
    verdict = accept_hello(
        h,
        mirror="m",
        kinds=KINDS,
        me="a",
        connected=facts["connected"],  # type: ignore[arg-type]
        role=str(facts["role"]),
        epoch=int(facts["epoch"]),  # type: ignore[call-overload]
    )
    assert verdict.refused is refused, why
    assert verdict.accepted is (refused is None)
    assert reason in verdict.reason, why
    if refused is None:
        assert verdict.reason == ""

"""Checkers: pure functions from a history (and final reads) to problems found.

Each returns a list of one-line problems; an empty list means the property
held. They take plain data (the history's events, sets of ids read from each
member, the monitors' observations), so they are tested on hand-made
histories without any process.

(a) append   every acknowledged id is on every member after convergence; every
             id present was attempted; no id whose write *failed* is present.
(b) bank     every snapshot read on every member, during and after the trial,
             sees all accounts and the initial total, and no negative balance.
(c) split    no epoch in which two different members acknowledged commits
             (epochs taken from each member's status just before the invoke and
             just after the acknowledgement, used only when the two agree), and
             no instant at which two members both said "primary" in one epoch.
(d) seen     every row a reader saw on any member (the newest of each client
             process in ``appends`` and ``transfers``, noted at every snapshot
             read) exists at the end: no reader saw a change that a failover
             took back.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

Observation = tuple[float, float, str, int, int]


def outcomes(events: Iterable[Mapping[str, Any]], f: str) -> dict[str, set[Any]]:
    """Values of ``f`` operations by final outcome: invoked, ok, fail, info."""
    out: dict[str, set[Any]] = {"invoke": set(), "ok": set(), "fail": set(), "info": set()}
    for e in events:
        if e.get("f") == f and e["type"] in out:
            v = e["value"]
            out[e["type"]].add(tuple(v) if isinstance(v, list) else v)
    return out


def check_append(events: Sequence[Mapping[str, Any]], final: Mapping[str, set[int]]) -> list[str]:
    o = outcomes(events, "append")
    problems: list[str] = []
    for member, ids in sorted(final.items()):
        lost = o["ok"] - ids
        if lost:
            problems.append(
                f"append: {len(lost)} acknowledged write(s) missing on {member}, "
                f"e.g. {sorted(lost)[:5]}"
            )
        phantom = ids - o["invoke"]
        if phantom:
            problems.append(
                f"append: {len(phantom)} id(s) on {member} never attempted, "
                f"e.g. {sorted(phantom)[:5]}"
            )
        ghost = ids & o["fail"]
        if ghost:
            problems.append(
                f"append: {len(ghost)} write(s) reported failed are present on {member}, "
                f"e.g. {sorted(ghost)[:5]}"
            )
    return problems


def check_bank(events: Iterable[Mapping[str, Any]], accounts: int, total: int) -> list[str]:
    problems: list[str] = []
    bad = 0
    for e in events:
        if e.get("type") != "read" or e.get("f") != "bank-read":
            continue
        if e["n"] != accounts or e["total"] != total or (e["min"] is not None and e["min"] < 0):
            bad += 1
            if bad <= 3:
                problems.append(
                    f"bank: read on {e['member']} at t={e['t']}s saw {e['n']} accounts, "
                    f"total {e['total']}, min {e['min']} "
                    f"(expected {accounts} accounts, total {total})"
                )
    if bad > 3:
        problems.append(f"bank: {bad} bad snapshot reads in all")
    return problems


def check_seen(events: Iterable[Mapping[str, Any]], final: Mapping[str, set[int]]) -> list[str]:
    """Every id a reader saw (``seen`` of read events, per table) is in ``final[table]``."""
    problems: list[str] = []
    gone: dict[tuple[str, int], Mapping[str, Any]] = {}
    for e in events:
        if e.get("type") != "read" or not e.get("seen"):
            continue
        for table, ids in e["seen"].items():
            for i in ids:
                if i not in final.get(table, set()) and (table, i) not in gone:
                    gone[(table, i)] = e
    for (table, i), e in sorted(gone.items(), key=lambda kv: kv[1]["t"])[:3]:
        problems.append(
            f"seen: a reader on {e['member']} saw {table} row {i} at t={e['t']}s, "
            "and it is gone at the end (a change a failover took back was visible)"
        )
    if len(gone) > 3:
        problems.append(f"seen: {len(gone)} rows seen by readers are gone in all")
    return problems


def _epoch_at(obs: Sequence[Observation], before: float, after: float) -> int | None:
    """The member's epoch if its last observation answered before ``before`` and
    its first observation sent after ``after`` agree; else None (unknown)."""
    answered = [o[1] for o in obs]
    i = bisect.bisect_left(answered, before) - 1
    sent = [o[0] for o in obs]
    j = bisect.bisect_right(sent, after)
    if i < 0 or j >= len(obs):
        return None
    return obs[i][3] if obs[i][3] == obs[j][3] else None


def label_epochs(
    events: Sequence[Mapping[str, Any]], observations: Mapping[str, Sequence[Observation]]
) -> list[tuple[int, str, float]]:
    """``(epoch, member, t)`` for every acknowledgement whose epoch is known."""
    invoked: dict[tuple[int, Any], float] = {}
    labels: list[tuple[int, str, float]] = []
    for e in events:
        if e.get("f") not in ("append", "transfer"):
            continue
        key = (e["proc"], tuple(e["value"]) if isinstance(e["value"], list) else e["value"])
        if e["type"] == "invoke":
            invoked[key] = e["t"]
        elif e["type"] == "ok" and e.get("member") in observations:
            epoch = _epoch_at(observations[e["member"]], invoked.get(key, e["t"]), e["t"])
            if epoch is not None:
                labels.append((epoch, e["member"], e["t"]))
    return labels


def check_split_brain(
    events: Sequence[Mapping[str, Any]], observations: Mapping[str, Sequence[Observation]]
) -> list[str]:
    problems: list[str] = []
    by_epoch: dict[int, set[str]] = defaultdict(set)
    for epoch, member, _ in label_epochs(events, observations):
        by_epoch[epoch].add(member)
    for epoch, members in sorted(by_epoch.items()):
        if len(members) > 1:
            problems.append(
                f"split brain: commits acknowledged in epoch {epoch} "
                f"by {', '.join(sorted(members))}"
            )
    # Two members answering "primary" in the same epoch at overlapping instants.
    prim = [
        (o[0], o[1], o[3], name)
        for name, obs in observations.items()
        for o in obs
        if o[2] == "primary"
    ]
    prim.sort()
    for k, (s1, e1, ep1, n1) in enumerate(prim):
        for s2, _e2, ep2, n2 in prim[k + 1 :]:
            if s2 > e1 + 0.05:
                break
            if n1 != n2 and ep1 == ep2:
                problems.append(
                    f"split brain: {n1} and {n2} both primary in epoch {ep1} around t={s1}s"
                )
                return problems
    return problems


def summarize(events: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    for e in events:
        if e.get("f") in ("append", "transfer"):
            counts[f"{e['f']}_{e['type']}"] += 1
        elif e.get("type") in ("read", "read-fail"):
            counts[e["type"]] += 1
    return dict(counts)

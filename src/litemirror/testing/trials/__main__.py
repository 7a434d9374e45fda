"""``python -m litemirror.testing.trials``: run fault trials, print one line each.

``--seed S`` replays trial S (with ``--trials N``: seeds S, S+1, ...). Exit
status 1 when any trial failed; its directory is printed and kept.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

from .runner import TrialOptions, run_trial


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m litemirror.testing.trials", description=__doc__)
    p.add_argument("--trials", type=int, default=3, help="how many trials (default 3)")
    p.add_argument("--seed", type=int, default=None, help="seed of the first trial (replay)")
    p.add_argument("--duration", type=float, default=12.0, help="seconds of faults per trial")
    p.add_argument("--workers", type=int, default=4, help="client threads per trial")
    p.add_argument(
        "--expect-takeover",
        action="store_true",
        help="require writes to resume during faults on the primary (needs failover)",
    )
    p.add_argument(
        "--no-autocommit-retry",
        action="store_true",
        help="autocommit writes without retry (avoids the driver's known resend ambiguity)",
    )
    p.add_argument("--no-arbiter", action="store_true", help="do not start an arbiter")
    p.add_argument("--out", type=Path, default=None, help="where trial directories go")
    p.add_argument("--keep", action="store_true", help="keep passing trials' directories too")
    a = p.parse_args(argv)
    first = a.seed if a.seed is not None else random.SystemRandom().randrange(1, 10**6)
    out = a.out or Path(tempfile.gettempdir()) / f"litemirror-trials-{os.getpid()}"
    opts = TrialOptions(
        duration_s=a.duration,
        workers=a.workers,
        expect_takeover=a.expect_takeover,
        keep=a.keep,
        autocommit_retry=not a.no_autocommit_retry,
        arbiter=not a.no_arbiter,
    )
    totals = {"faults": 0, "acknowledged": 0, "lost": 0, "failed": 0}
    started = time.monotonic()
    for i in range(a.trials):
        seed = first + i
        r = run_trial(seed, out / f"seed-{seed}", opts)
        print(r.line(), flush=True)
        totals["faults"] += len(r.faults)
        totals["acknowledged"] += r.acknowledged
        totals["lost"] += r.counts.get("lost", 0)
        if not r.ok:
            totals["failed"] += 1
            print(f"  kept {r.directory} (reason.txt, history.jsonl, *.log)", flush=True)
            for problem in r.problems[1:5]:
                print(f"  also: {problem}", flush=True)
    print(
        f"{a.trials} trial(s) from seed {first} in {time.monotonic() - started:.0f}s: "
        f"{totals['faults']} faults, {totals['acknowledged']} writes acknowledged, "
        f"{totals['lost']} lost, {totals['failed']} failed",
        flush=True,
    )
    return 1 if totals["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())

"""Whole seeded fault trials against real member processes.

The fast set runs two short trials in ``make test``; the slow set more in
``make test-all``. A failing trial's directory (logs, history, reason) is in
the assertion message.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from litemirror.testing.trials.runner import TrialOptions, TrialResult, run_trial

# Until the driver stops resending autocommit writes whose outcome is unknown
# (docs/fault-trials.md, "Known findings"), the suite keeps retry off for them.
FAST = TrialOptions(duration_s=8.0, workers=3, autocommit_retry=False)


def _check(r: TrialResult) -> None:
    assert r.ok, f"{r.line()}\nproblems: {r.problems}\nkept in {r.directory}"
    assert r.acknowledged > 100, r.line()
    assert r.counts.get("lost", 0) == 0


@pytest.mark.parametrize("seed", [11, 13])
def test_trial(tmp_path: Path, seed: int) -> None:
    r = run_trial(seed, tmp_path / f"seed-{seed}", FAST)
    _check(r)
    assert r.faults, "the schedule injected nothing"


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(1000, 1010))
def test_trial_slow(tmp_path: Path, seed: int) -> None:
    _check(
        run_trial(
            seed, tmp_path / f"seed-{seed}", TrialOptions(duration_s=15.0, autocommit_retry=False)
        )
    )

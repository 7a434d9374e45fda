"""Run a fuzz target: ``python -m tests.fuzz.run --target frames --iterations 1000000``.

Two engines share the targets of :mod:`.targets`:

``mutate``   (default, needs nothing installed) a seeded, structure-aware
             mutation fuzzer: it starts from the corpus and the seeds,
             mutates and repairs (see :mod:`.mutate`), and keeps an input when
             it produced an outcome not seen before (a new message type, a new
             kind of refusal): feedback without coverage instrumentation.
``atheris``  coverage-guided (``pip install -e '.[fuzz]'``); uses the same
             mutations as a custom mutator, half of the time; inputs with new
             coverage go to $TMPDIR/litemirror-fuzz/<target>/.

Each input is time-boxed (``--timeout`` seconds of CPU); going over is a
hang finding. The time box is a signal, which Python handles only between
bytecodes: a hang inside C code (OpenSSL, msgspec) is caught by a watchdog
instead, which stops the run after ``WATCHDOG_S`` seconds without progress
and prints where it was stuck (rerun with the same ``--seed`` to reproduce).

A finding's smallest input goes to tests/fuzz/crashes/<target>/
with a .txt saying what happened. Findings whose signature is in ``KNOWN``
(reported, not yet fixed) are counted but not saved again.
"""

from __future__ import annotations

import argparse
import faulthandler
import hashlib
import itertools
import random
import re
import resource
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from .mutate import fixup, mutate
from .targets import TARGETS, Finding, random_structured, seeds

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "corpus"
CRASHES = HERE / "crashes"
MAX_LEN = 8192
#: Wall-clock seconds one input may take before the run is stopped (see above).
WATCHDOG_S = 120.0
#: Findings reported to the owners of the parser and not fixed yet, by
#: signature prefix. See tests/fuzz/crashes/*/ for the inputs.
KNOWN: dict[str, tuple[str, ...]] = {
    # msgspec raises UnicodeDecodeError for a str that is not UTF-8 (msgspec
    # issue #714) and RecursionError for deep nesting, even where it only
    # skips a value; neither is translated to the documented error yet.
    "frames": (),
    "records": (),
    "ops": (),
    "handshake": (),
    "arbiter_handshake": (),
    "tls_clienthello": (),
    "password_hash": (),
}


class Hang(BaseException):
    """An input ran longer than its time box (BaseException: targets must not catch it)."""


@dataclass
class Report:
    target: str
    iterations: int = 0
    seconds: float = 0.0
    outcomes: dict[str, int] = field(default_factory=dict)
    #: signature -> (count, smallest input)
    findings: dict[str, tuple[int, bytes, str]] = field(default_factory=dict)

    def new_findings(self) -> list[str]:
        known = KNOWN.get(self.target, ())
        return [s for s in self.findings if not s.startswith(known)]

    def summary(self) -> str:
        rate = self.iterations / self.seconds if self.seconds else 0.0
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
        lines = [
            f"target {self.target}: {self.iterations} inputs in {self.seconds:.1f} s "
            f"({rate:.0f}/s), {len(self.outcomes)} distinct outcomes, "
            f"{len(self.findings)} finding signature(s), {len(self.new_findings())} new, "
            f"peak RSS {peak} MiB"
        ]
        for sig, (count, data, _) in sorted(self.findings.items()):
            tag = "known" if sig not in self.new_findings() else "NEW"
            lines.append(f"  [{tag}] {sig}: {count} input(s), smallest {len(data)} bytes")
        return "\n".join(lines)


def _on_alarm(signum: int, frame: FrameType | None) -> None:
    raise Hang()


def run_one(fn: Callable[[bytes], str], data: bytes, timeout: float) -> str:
    """The outcome label; raises Finding (a hang is one too)."""
    # fuzz() installs the handler once; a lone call (replay, tests) does it here.
    mine = signal.getsignal(signal.SIGVTALRM) is not _on_alarm
    old = signal.signal(signal.SIGVTALRM, _on_alarm) if mine else None
    signal.setitimer(signal.ITIMER_VIRTUAL, timeout)
    try:
        return fn(data)
    except Hang:
        raise Finding(f"no result within {timeout} s of CPU", "hang") from None
    finally:
        signal.setitimer(signal.ITIMER_VIRTUAL, 0)
        if mine:
            signal.signal(signal.SIGVTALRM, old)


def load_corpus(target: str) -> list[bytes]:
    d = CORPUS / target
    return [p.read_bytes() for p in sorted(d.iterdir())] if d.is_dir() else []


def inputs(target: str, seed: int, pool: list[bytes]) -> Iterator[bytes]:
    rnd = random.Random(seed)
    while True:
        r = rnd.random()
        if r < 0.1:
            data = random_structured(target, rnd)
        elif r < 0.12:
            data = rnd.randbytes(rnd.randrange(64))
        else:
            data = mutate(rnd.choice(pool), pool, rnd, MAX_LEN)
        if rnd.random() < 0.5:
            data = fixup(target, data, rnd)
        yield data


def fuzz(
    target: str,
    iterations: int,
    seed: int = 0,
    timeout: float = 2.0,
    save_corpus: int = 0,
    progress: Callable[[Report], None] | None = None,
) -> Report:
    """Run ``iterations`` inputs through ``target``; never raises for a finding."""
    fn = TARGETS[target]
    pool = [*seeds(target), *load_corpus(target)]
    report = Report(target)
    saved = 0
    old = signal.signal(signal.SIGVTALRM, _on_alarm)
    start = armed = time.monotonic()
    faulthandler.dump_traceback_later(WATCHDOG_S, exit=True)
    try:
        # Lazily: inputs() must see the pool grow as new outcomes are found.
        for data in itertools.chain(list(pool), _take(inputs(target, seed, pool), iterations)):
            report.iterations += 1
            if (now := time.monotonic()) - armed > 1.0:  # re-arm about once a second
                faulthandler.dump_traceback_later(WATCHDOG_S, exit=True)
                armed = now
            try:
                outcome = run_one(fn, data, timeout)
            except Finding as f:
                count, smallest, what = report.findings.get(f.signature, (0, data, f.what))
                if len(data) <= len(smallest):
                    smallest, what = data, f.what
                report.findings[f.signature] = (count + 1, smallest, what)
                continue
            if outcome not in report.outcomes:
                report.outcomes[outcome] = 0
                if len(pool) < 20_000:
                    pool.append(data)
                if saved < save_corpus and len(data) <= 4096:
                    _save(CORPUS / target, data)
                    saved += 1
            report.outcomes[outcome] += 1
            if progress and report.iterations % 100_000 == 0:
                report.seconds = time.monotonic() - start
                progress(report)
    finally:
        faulthandler.cancel_dump_traceback_later()
        signal.signal(signal.SIGVTALRM, old)
        report.seconds = time.monotonic() - start
    return report


def _take(it: Iterator[bytes], n: int) -> Iterator[bytes]:
    for _, data in zip(range(n), it, strict=False):
        yield data


def _save(directory: Path, data: bytes, suffix: str = "") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{hashlib.sha1(data).hexdigest()[:16]}{suffix}"
    path.write_bytes(data)
    return path


def save_findings(report: Report) -> list[Path]:
    paths = []
    for sig, (count, data, what) in report.findings.items():
        slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", sig)[:60]
        path = _save(CRASHES / report.target, data, suffix=f"-{slug}.bin")
        path.with_suffix(".txt").write_text(
            f"target: {report.target}\nsignature: {sig}\nseen: {count} time(s) in "
            f"{report.iterations} inputs\nreplay: python -m tests.fuzz.run --target "
            f"{report.target} --replay {path.relative_to(HERE.parent.parent)}\n\n{what}\n"
        )
        paths.append(path)
    return paths


def run_atheris(target: str, iterations: int, timeout: float) -> None:
    import atheris  # the `fuzz` extra

    fn = TARGETS[target]
    known = KNOWN.get(target, ())
    rnd = random.Random(0)
    pool = [*seeds(target), *load_corpus(target)]

    def one(data: bytes) -> None:
        try:
            fn(data)
        except Finding as f:
            if not f.signature.startswith(known):
                raise

    def mutator(data: bytes, max_size: int, seed: int) -> bytes:
        rnd.seed(seed)
        if rnd.random() < 0.5:
            out = atheris.Mutate(data, max_size)
        else:
            out = mutate(data, pool, rnd, max_size)
        # A repair may add a frame header: stay within what libFuzzer allows.
        return (fixup(target, out, rnd) if rnd.random() < 0.5 else out)[:max_size]

    atheris.instrument_all()
    # New coverage goes to a scratch directory; the committed corpus is only read.
    work = Path(tempfile.gettempdir()) / "litemirror-fuzz" / target
    work.mkdir(parents=True, exist_ok=True)
    argv = [sys.argv[0], f"-runs={iterations}", f"-timeout={max(1, int(timeout))}"]
    argv += [f"-max_len={MAX_LEN}", f"-artifact_prefix={CRASHES / target}/"]
    argv += [str(work), str(CORPUS / target)]
    (CRASHES / target).mkdir(parents=True, exist_ok=True)
    atheris.Setup(argv, one, custom_mutator=mutator)
    atheris.Fuzz()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.fuzz.run", description=__doc__)
    p.add_argument("--target", required=True, choices=sorted(TARGETS))
    p.add_argument("--iterations", type=int, default=100_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--timeout", type=float, default=2.0, help="CPU seconds per input")
    p.add_argument("--engine", choices=("mutate", "atheris"), default="mutate")
    p.add_argument(
        "--save-corpus",
        type=int,
        default=0,
        metavar="N",
        help="add up to N inputs with new outcomes to the corpus",
    )
    p.add_argument("--replay", nargs="+", metavar="FILE", help="run these inputs and stop")
    p.add_argument("--write-seeds", action="store_true", help="write the seeds to the corpus")
    args = p.parse_args(argv)
    if args.write_seeds:
        for data in seeds(args.target):
            print(f"wrote {_save(CORPUS / args.target, data, suffix='-seed')}")
        return 0
    if args.replay:
        bad = 0
        for name in args.replay:
            try:
                print(f"{name}: {run_one(TARGETS[args.target], Path(name).read_bytes(), 10)}")
            except Finding as f:
                bad += 1
                print(f"{name}: FINDING {f.signature}\n{f.what}")
        return 1 if bad else 0
    if args.engine == "atheris":
        run_atheris(args.target, args.iterations, args.timeout)
        return 0

    def show(r: Report) -> None:
        print(r.summary().splitlines()[0], flush=True)

    report = fuzz(args.target, args.iterations, args.seed, args.timeout, args.save_corpus, show)
    print(report.summary())
    for path in save_findings(report):
        print(f"saved {path}")
    return 1 if report.new_findings() else 0


if __name__ == "__main__":
    sys.exit(main())

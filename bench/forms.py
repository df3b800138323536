"""Benchmark: read a mix of filled forms repeatedly through the sandboxed PDF reader.

    .venv/bin/python bench/forms.py [--seconds 10] [--processes 2]

Prints forms per second and peak resident memory, first for one process, then for a pool
of processes (one per core by default). Each process has its own sandboxed worker, whose
peak is reported separately from the caller's.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CORPUS = ROOT / "tests" / "corpus" / "forms"
# Completed forms the three ways they arrive: AcroForm fields, drawn text, printed to PDF.
MIX = [
    "gpp-acroform", "gpp-flattened", "gpp-printed", "gpp-acroform-odd-case",
    "uar-acroform", "uar-flattened", "uar-printed", "uar-acroform-one-admin",
    "pcn-acroform", "pcn-flattened", "pcn-printed", "pcn-flattened-odd-case",
]


@dataclass
class Run:
    forms: int
    seconds: float
    caller_rss_kb: int
    worker_rss_kb: int


def _load() -> list[bytes]:
    return [(CORPUS / f"{name}.pdf").read_bytes() for name in MIX]


def run(seconds: float) -> Run:
    """Read the mix round and round for about `seconds`, in this process."""
    from forms import read_pdf
    from forms.sandbox import POOL

    documents = _load()
    read_pdf(documents[0])  # start the worker outside the timing
    done = 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        for data in documents:
            parsed = read_pdf(data)
            if parsed.kind is None:
                raise RuntimeError("a benchmark form did not read")
            done += 1
    elapsed = time.perf_counter() - started
    caller = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return Run(done, elapsed, caller, POOL.peak_worker_rss_kb)


def _report(label: str, runs: list[Run], wall: float) -> None:
    forms = sum(r.forms for r in runs)
    print(f"{label}: {forms} forms in {wall:.1f} s = {forms / wall:.1f} forms/s; "
          f"peak RSS caller {max(r.caller_rss_kb for r in runs) / 1024:.0f} MB, "
          f"worker {max(r.worker_rss_kb for r in runs) / 1024:.0f} MB "
          f"(per process)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--processes", type=int, default=2)
    args = parser.parse_args()
    print(f"mix: {len(MIX)} completed forms (AcroForm, flattened, printed to PDF)")

    single = run(args.seconds)
    _report("1 process", [single], single.seconds)

    with ProcessPoolExecutor(max_workers=args.processes) as pool:
        started = time.perf_counter()
        runs = list(pool.map(run, [args.seconds] * args.processes))
        wall = max(r.seconds for r in runs)
        del started
    _report(f"{args.processes} processes", runs, wall)


if __name__ == "__main__":
    main()

"""Benchmark: read a mix of filled forms repeatedly through the sandboxed PDF reader.

    .venv/bin/python bench/forms.py [--seconds 10] [--processes 2] [--ocr]

Prints forms per second and peak resident memory, first for one process, then for a pool
of processes (one per core by default). Each process has its own sandboxed worker, whose
peak is reported beside the caller's. The CPU time per form (worker and caller together)
is printed too: on a shared machine it says what the code costs when the wall-clock rate
is held back by other load. With --ocr, the same for scanned two-page forms read by OCR
(tests/corpus/scans: copier PDFs and a multi-page TIFF at 150–300 dpi, turned).
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CORPUS = ROOT / "tests" / "corpus" / "forms"
SCANS = ROOT / "tests" / "corpus" / "scans"
# Scanned two-page forms, the ways copiers send them.
SCAN_MIX = [
    "uar-pdf-150dpi-rot2.pdf",
    "gpp-tiff-200dpi-rot-3.tiff",
    "pcn-pdf-300dpi-upside-down.pdf",
    "../forms/gpp-scan-200dpi.pdf",
]


def scan_costs() -> None:
    """CPU per scanned form, one by one (worker and Tesseract together): an upright page is
    read once; a page fed upside down or sideways is read again after OSD."""
    from forms import read_attachment
    from forms.sandbox import POOL

    for name in SCAN_MIX:
        data = (SCANS / name).read_bytes()
        read_attachment(data)  # warm
        before = POOL.worker_cpu_seconds
        read_attachment(data)
        print(f"  {Path(name).name}: {1000 * (POOL.worker_cpu_seconds - before):.0f} ms CPU")


# Completed forms the three ways they arrive: AcroForm fields, drawn text, printed to PDF.
MIX = [
    "gpp-acroform",
    "gpp-flattened",
    "gpp-printed",
    "gpp-acroform-odd-case",
    "uar-acroform",
    "uar-flattened",
    "uar-printed",
    "uar-acroform-one-admin",
    "pcn-acroform",
    "pcn-flattened",
    "pcn-printed",
    "pcn-flattened-odd-case",
]


@dataclass
class Run:
    forms: int
    seconds: float
    cpu_seconds: float  # caller and worker together
    caller_rss_kb: int
    worker_rss_kb: int


def run(seconds: float, ocr: bool = False) -> Run:
    """Read the mix round and round for about `seconds`, in this process."""
    from forms import read_attachment as read_pdf
    from forms.sandbox import POOL

    if ocr:
        documents = [(SCANS / name).read_bytes() for name in SCAN_MIX]
    else:
        documents = [(CORPUS / f"{name}.pdf").read_bytes() for name in MIX]
    read_pdf(documents[0])  # start the worker outside the timing
    done = 0
    worker_cpu = POOL.worker_cpu_seconds
    caller_cpu = time.process_time()
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        for data in documents:
            if read_pdf(data).kind is None:
                raise RuntimeError("a benchmark form did not read")
            done += 1
    elapsed = time.perf_counter() - started
    cpu = (time.process_time() - caller_cpu) + (POOL.worker_cpu_seconds - worker_cpu)
    caller_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return Run(done, elapsed, cpu, caller_rss, POOL.peak_worker_rss_kb)


def _report(label: str, runs: list[Run]) -> None:
    forms = sum(r.forms for r in runs)
    wall = max(r.seconds for r in runs)
    cpu_ms = 1000 * sum(r.cpu_seconds for r in runs) / forms
    print(
        f"{label}: {forms} forms in {wall:.1f} s = {forms / wall:.1f} forms/s "
        f"({cpu_ms:.1f} ms CPU per form); peak RSS per process: caller "
        f"{max(r.caller_rss_kb for r in runs) / 1024:.0f} MB, "
        f"PDF worker {max(r.worker_rss_kb for r in runs) / 1024:.0f} MB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--ocr", action="store_true", help="scanned forms, read by OCR")
    args = parser.parse_args()
    what = (
        f"{len(SCAN_MIX)} scanned two-page forms read by OCR"
        if args.ocr
        else f"{len(MIX)} completed forms (AcroForm, flattened, printed to PDF)"
    )
    print(f"mix: {what}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    if args.ocr:
        scan_costs()
    _report("1 process", [run(args.seconds, args.ocr)])
    with ProcessPoolExecutor(max_workers=args.processes) as pool:
        runs = list(pool.map(run, [args.seconds] * args.processes, [args.ocr] * args.processes))
    _report(f"{args.processes} processes", runs)


if __name__ == "__main__":
    main()

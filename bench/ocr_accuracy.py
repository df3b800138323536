"""How well scanned forms are read, and where to set the confidence threshold.

    .venv/bin/python bench/ocr_accuracy.py [--dpi 150 200 300] [--forms uar gpp pcn]

Makes scanned copies of the shipped forms with scripts/make_scan_corpus.py (every chosen
resolution, turned -3° to 3°, a quarter and a half turn), reads each by OCR and compares
each value with what was written. Prints the share of values read exactly, and for a range
of thresholds how many values would be taken without a person and how many of those are
wrong (a silent misread: the figure that must stay at 0 for the configured
`[limits] ocr_min_confidence`). Names are compared without accents.
"""

from __future__ import annotations

import argparse
import sys
import time
import unicodedata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

THRESHOLDS = (60, 70, 80, 85, 88, 90, 92)


def folded(value: Any) -> Any:
    """Names compared without accents (a scan may lose one; the acknowledgement shows it)."""
    if not isinstance(value, str):
        return value
    decomposed = unicodedata.normalize("NFKD", value)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def dotted(fields: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """The fields as dotted keys ("nominees.0.email"), as the readings name them."""
    flat: dict[str, Any] = {}
    for key, value in fields.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(dotted(value, path + "."))
        elif isinstance(value, list) and key == "nominees":
            for index, entry in enumerate(value):
                flat.update(dotted(entry, f"{path}.{index}."))
        else:
            flat[path] = value
    return flat


def main() -> None:
    import make_scan_corpus as corpus

    from forms import read_attachment
    from forms.scan_reader import SOURCE

    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--dpi", type=int, nargs="+", default=[150, 200, 300])
    parser.add_argument("--forms", nargs="+", default=list(corpus.FORMS))
    args = parser.parse_args()
    scans = [
        s
        for s in corpus.every_variant()
        if s.form in args.forms and any(f"-{d}dpi-" in s.name for d in args.dpi)
    ]
    results: list[tuple[bool, float]] = []  # (right, confidence) per value read
    started = time.perf_counter()
    for scan in scans:
        parsed = read_attachment(scan.make())
        want = dotted(corpus.expected(scan)["fields"])
        got = dotted({k: parsed.fields.get(k) for k in corpus.expected(scan)["fields"]})
        readings = parsed.fields.get("readings") or {}
        exact = sum(folded(got.get(k)) == folded(v) for k, v in want.items())
        print(f"{scan.name}: {exact}/{len(want)} values right, {len(parsed.findings)} findings")
        for key, reading in readings.items():
            if reading.get("source") != SOURCE or key not in want or reading["value"] is None:
                continue
            right = folded(got.get(key)) == folded(want[key])
            results.append((right, reading["confidence"]))
            if not right and reading["confidence"] >= min(THRESHOLDS):
                print(f"  {key}: read {got.get(key)!r} ({reading['confidence']:.0f}% sure)")
    elapsed = time.perf_counter() - started
    total = len(results) or 1
    print(
        f"{len(scans)} scans in {elapsed:.0f} s; {sum(r for r, _ in results)} of {len(results)} "
        f"text values read exactly ({100 * sum(r for r, _ in results) / total:.0f}%)"
    )
    for threshold in THRESHOLDS:
        taken = [right for right, conf in results if conf >= threshold]
        wrong = taken.count(False)
        print(
            f"threshold {threshold}: {len(taken)} values taken without a person "
            f"({100 * len(taken) / total:.0f}%), {wrong} of them wrong"
        )


if __name__ == "__main__":
    main()

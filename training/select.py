"""Pick the lesion fine-tuning candidate to test, by a rule fixed in code, from the candidate
summary alone (val split and held-out *training* boxes; never the test split).

    python -m training.select --summary models/default/training/candidates.json \\
        --out models/default/training/selection.json

The rule (declared 2026-12-06, before any candidate of issue 21 had finished):

1. Eligible: a finished run whose last epoch has val accuracy >= 0.94, every val recall
   >= 0.90, Grad-CAM's peak in the held-out box >= 0.80, an empty map on at most 0.05 of
   the held-out boxes, and the control (a same-size region elsewhere in the head removed)
   keeping the class on >= 0.90 of the held-out boxes under each audit removal.
2. Among the eligible: the lowest share of held-out meningioma and pituitary boxes that keep
   their class with the lesion removed (the worse of the two audit removals), then the
   highest share called "no tumour" (the worse of the two), then the higher val accuracy.

The test split is evaluated afterwards, once, for the chosen candidate only
(``python -m training.final_test``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

from explain.metrics.counterfactual import AUDIT_REMOVALS

from .lesion_record import read_summary

RULE = __doc__.split("The rule", 1)[1].split("The test split", 1)[0].strip()
MIN_VAL_ACCURACY = 0.94
MIN_VAL_RECALL = 0.90
MIN_HELD_PEAK = 0.80
MAX_HELD_EMPTY = 0.05
MIN_HELD_CONTROL = 0.90


def check_no_test_figures(record: dict, name: str) -> None:
    """Refuse a candidate record that carries any test-split figure: selection must not see one."""
    def keys(obj):
        if isinstance(obj, dict):
            for k, v in obj.items():
                yield k
                yield from keys(v)
        elif isinstance(obj, list):
            for v in obj:
                yield from keys(v)

    bad = [k for k in keys({k: v for k, v in record.items() if k != "settings"}) if k.startswith("test")]
    if bad:
        raise SystemExit(f"error: candidate {name} carries test-split figures ({bad[0]}); "
                         "selection reads val and held-out training figures only")


def eligibility(final: dict) -> list[str]:
    """Why a candidate's last-epoch figures fail the rule's first step ([] = eligible)."""
    reasons = []
    if final["val_accuracy"] < MIN_VAL_ACCURACY:
        reasons.append(f"val accuracy {final['val_accuracy']:.3f} < {MIN_VAL_ACCURACY}")
    for key in sorted(k for k in final if k.startswith("val_recall_")):
        if final[key] < MIN_VAL_RECALL:
            reasons.append(f"{key} {final[key]:.3f} < {MIN_VAL_RECALL}")
    if final["held_peak_in_box"] < MIN_HELD_PEAK:
        reasons.append(f"held-out peak in box {final['held_peak_in_box']:.3f} < {MIN_HELD_PEAK}")
    if final["held_empty"] > MAX_HELD_EMPTY:
        reasons.append(f"held-out empty maps {final['held_empty']:.3f} > {MAX_HELD_EMPTY}")
    for method in AUDIT_REMOVALS:
        control = final.get(f"held_control_kept_{method}")
        if control is None or control < MIN_HELD_CONTROL:
            reasons.append(f"held-out control kept ({method}) {control} < {MIN_HELD_CONTROL}")
    return reasons


def rank_key(final: dict) -> tuple[float, float, float]:
    """Sort key of the rule's second step: smaller is better."""
    kept = max(final[f"held_kept_mp_{m}"] for m in AUDIT_REMOVALS)
    no_tumour = min(final[f"held_no_tumour_mp_{m}"] for m in AUDIT_REMOVALS)
    return kept, -no_tumour, -final["val_accuracy"]


def select(candidates: dict) -> dict:
    """{"chosen": name or None, "candidates": {name: {"eligible", "reasons", "rank_key"}}}."""
    table = {}
    for name, record in sorted(candidates.items()):
        check_no_test_figures(record, name)
        if record.get("status") != "done" or not record.get("final"):
            table[name] = {"eligible": False, "reasons": [f"not finished ({record.get('status')})"]}
            continue
        reasons = eligibility(record["final"])
        table[name] = {"eligible": not reasons, "reasons": reasons, "rank_key": list(rank_key(record["final"]))}
    eligible = [n for n, row in table.items() if row["eligible"]]
    chosen = min(eligible, key=lambda n: tuple(table[n]["rank_key"])) if eligible else None
    return {"chosen": chosen, "candidates": table}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.select", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--summary", default="models/default/training/candidates.json")
    p.add_argument("--out", default="models/default/training/selection.json")
    args = p.parse_args(argv)
    text = Path(args.summary).read_bytes()
    result = select(read_summary(args.summary))
    doc = {"rule": RULE, "summary": args.summary, "summary_sha256": hashlib.sha256(text).hexdigest(),
           "date": datetime.now(UTC).isoformat(timespec="seconds"),
           "command": "python -m training.select " + " ".join(argv if argv is not None else sys.argv[1:]),
           **result}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(doc, indent=1) + "\n")
    for name, row in result["candidates"].items():
        print(f"{name}: {'eligible' if row['eligible'] else 'not eligible: ' + '; '.join(row['reasons'])}")
    print(f"chosen: {result['chosen']}  (wrote {args.out})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

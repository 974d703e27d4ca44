"""The training record: the hash hold-out, the selection rule, the test-split targets and the
model card's generated section, on known answers."""

import json

import pytest

from explain.metrics.counterfactual import AUDIT_REMOVALS
from training import card, final_test, select
from training import lesion_record as R


def test_hash_holdout_is_stable_when_boxes_are_added():
    keys = [f"Training/glioma/Tr-gl_{i:04d}.jpg" for i in range(400)]
    used, held = R.split_holdout(keys[:200], 0.125)
    used2, held2 = R.split_holdout(keys, 0.125)
    assert set(held) == set(held2) & set(keys[:200]) and set(used) == set(used2) & set(keys[:200])
    assert sorted(used + held) == sorted(keys[:200])
    assert 0.08 < len(held2) / len(keys) < 0.17
    assert R.split_holdout(keys, 0.0) == (sorted(keys), [])
    assert R.hash_fraction("a") == pytest.approx(int("ca978112ca1bbdca", 16) / 2 ** 64)


def test_earlier_stages_training_boxes_are_replayed(tmp_path):
    boxes = {f"Training/glioma/img_{i}.png": {"box": [0, 0, 4, 4], "confidence": "high"} for i in range(8)}
    boxes["Training/glioma/img_9.png"] = {"box": None, "confidence": "low"}
    (tmp_path / "b.json").write_text(json.dumps({"images": boxes}))
    legacy = {"lesion_finetune": {"boxes": ["b.json"], "settings": {"holdout": 4}}}
    # Every 4th of the 8 sorted boxed keys (img_3, img_7) was held out; the null entry never counts.
    assert R.earlier_training_keys(legacy, tmp_path) == {f"Training/glioma/img_{i}.png" for i in (0, 1, 2, 4, 5, 6)}
    hashed = {"lesion_finetune": {"boxes": ["b.json"], "holdout": {"held": ["Training/glioma/img_0.png"]}},
              "lesion_finetune_earlier": [legacy["lesion_finetune"]]}
    assert R.earlier_training_keys(hashed, tmp_path) == {f"Training/glioma/img_{i}.png" for i in range(8)}


def test_resume_check_names_every_changed_setting():
    R.check_resume({"lr": 1e-3, "epochs": 2}, {"lr": 1e-3, "epochs": 2})
    with pytest.raises(SystemExit, match="epochs: 2 -> 3; seed: 1 -> None"):
        R.check_resume({"lr": 1e-3, "epochs": 2, "seed": 1}, {"lr": 1e-3, "epochs": 3})


def _final(**changes):
    fig = {"val_accuracy": 0.95, "val_recall_glioma": 0.95, "val_recall_notumor": 0.97, "held_peak_in_box": 0.9,
           "held_empty": 0.0}
    for m in AUDIT_REMOVALS:
        fig.update({f"held_kept_mp_{m}": 0.2, f"held_no_tumour_mp_{m}": 0.6, f"held_control_kept_{m}": 0.95})
    fig.update(changes)
    return {"status": "done", "final": fig, "settings": {}}


def test_selection_rule_on_known_answers():
    m0, m1 = AUDIT_REMOVALS
    candidates = {
        "low_val": _final(val_accuracy=0.93),
        "weak_recall": _final(val_recall_glioma=0.85),
        "smoothed_patch": _final(**{f"held_control_kept_{m1}": 0.85}),
        "keeps_more": _final(**{f"held_kept_mp_{m0}": 0.1, f"held_kept_mp_{m1}": 0.35}),
        "best": _final(**{f"held_kept_mp_{m0}": 0.3}),
        "tie_less_no_tumour": _final(**{f"held_kept_mp_{m0}": 0.3, f"held_no_tumour_mp_{m1}": 0.5}),
        "running": {"status": "running", "final": None},
    }
    result = select.select(candidates)
    assert result["chosen"] == "best"
    table = result["candidates"]
    assert [n for n, row in table.items() if row["eligible"]] == ["best", "keeps_more", "tie_less_no_tumour"]
    assert "val accuracy 0.930 < 0.94" in table["low_val"]["reasons"]
    assert table["weak_recall"]["reasons"] == ["val_recall_glioma 0.850 < 0.9"]
    assert "control kept" in table["smoothed_patch"]["reasons"][0]
    assert table["running"]["reasons"] == ["not finished (running)"]
    assert select.select({"a": _final(val_accuracy=0.5)})["chosen"] is None


def test_selection_refuses_test_figures():
    record = _final()
    record["final"]["test_accuracy"] = 0.97
    with pytest.raises(SystemExit, match="test-split figures"):
        select.select({"leaky": record})


def test_final_test_targets_on_known_answers():
    cf = {c: {f"{k}_{m}": v for m in AUDIT_REMOVALS for k, v in (("kept", 0.2), ("no_tumour", 0.6))}
          for c in ("meningioma", "pituitary")}
    report = {"metrics": {"accuracy": 0.96, "balanced_accuracy": 0.95, "ece": 0.02, "recall/notumor": 0.97,
                          "recall/glioma": 0.95, "recall/meningioma": 0.91, "recall/pituitary": 0.97},
              "lesions": {"pointing_8px": {"glioma": 0.82, "meningioma": 0.9, "pituitary": 0.95},
                          "counterfactual": cf, "control_kept_tumour": {m: 0.93 for m in AUDIT_REMOVALS}},
              "sanity": {"passed": True}}
    rows = final_test.targets(report)
    assert all(r["met"] for r in rows) and len(rows) == 7 + 3 + 5 * len(AUDIT_REMOVALS) + 1
    report["lesions"]["counterfactual"]["pituitary"][f"kept_{AUDIT_REMOVALS[1]}"] = 0.31
    report["metrics"]["ece"] = 0.051
    failed = [r["target"] for r in final_test.targets(report) if not r["met"]]
    assert failed == ["ECE", f"pituitary kept, lesion removed ({AUDIT_REMOVALS[1]})"]


def test_final_test_runs_once(tmp_path):
    out = tmp_path / "final.json"
    out.write_text("{}")
    with pytest.raises(SystemExit, match="evaluated once already"):
        final_test.main(["--out", str(out)])


def test_model_card_matches_the_record_files():
    """The card's training-record section is what ``python -m training.card`` writes from the
    committed files; a typed or stale figure fails here."""
    assert card.card_section(card.CARD.read_text()) == card.render()

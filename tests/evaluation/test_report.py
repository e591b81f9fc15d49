"""The offline HTML report: every section from a full run, a bare run, and the error breakdown by attribute type."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from ameli_ray.evaluation.report import attribute_error_breakdown, attribute_type, write_report

NAN = float("nan")

ENTITIES = {
    "p-128-blk": {"Model Number": "NV-128-BK", "Storage Capacity": "128GB", "Color": "Onyx Black", "Brand": "Nova"},
    "p-256-blk": {"Model Number": "NV-256-BK", "Storage Capacity": "256GB", "Color": "Onyx Black", "Brand": "Nova"},
    "p-128-blu": {"Model Number": "NV-128-BL", "Storage Capacity": "128GB", "Color": "Midnight Blue", "Brand": "Nova"},
    # siblings without model numbers: only colour, only size, nothing
    "s-red": {"Color": "Red", "Size": "M", "Brand": "Acme"},
    "s-blue": {"Color": "Blue", "Size": "M", "Brand": "Acme"},
    "s-red-l": {"Color": "Red", "Size": "L", "Brand": "Acme"},
    "s-red-twin": {"Color": "red", "Size": "M", "Brand": "ACME"},
}


def _row(mid, answer, gold, cands, *, confidence=0.5, attributes=()):
    return {
        "mention_id": mid, "entity_id": answer, "gold_entity_id": gold, "candidate_ids": list(cands),
        "candidate_scores": [1.0 - 0.1 * i for i in range(len(cands))],
        "final_scores": [1.0 - 0.1 * i if i < 2 else NAN for i in range(len(cands))],
        "contradicted": [False] * len(cands), "filtered": False, "confidence": confidence,
        "attributes": [{"key": k, "value": v, "source": "text", "confidence": 0.9} for k, v in attributes],
        "errors": [],
    }


ROWS = [
    _row("m01", "p-256-blk", "p-128-blk", ["p-256-blk", "p-128-blk"], attributes=[("storage capacity", "128gb")]),
    _row("m02", "s-blue", "s-red", ["s-blue", "s-red"], confidence=0.4, attributes=[("color", "red")]),
    _row("m03", "s-red-l", "s-red", ["s-red-l", "s-red"], confidence=NAN),
    _row("m04", "s-red-twin", "s-red", ["s-red-twin", "s-red"], confidence=None),
    _row("m05", "", "p-128-blu", ["p-128-blk", "p-128-blu"], confidence=0.2),
    _row("m06", "p-128-blu", "p-128-blu", ["p-128-blu", "p-128-blk"], confidence=0.95,
         attributes=[("color", "Midnight-Blue"), ("storage capacity", "256gb"), ("brand", "Nova")]),
    _row("m07", "s-red", "s-red", ["s-red", "s-blue"], confidence=0.9),
    _row("m08", "", "", ["s-red"], confidence=0.8),  # labelled no-match, answered no-match: right
    _row("m09", "s-red", None, ["s-red"]),  # unlabelled
    _row("m10", "unknown-product", "s-red", ["unknown-product", "s-red"]),  # answer not in the catalogue
    _row("<script>alert(1)</script>", "p-128-blk", "p-128-blk", ["p-128-blk"], confidence=0.99,
         attributes=[("color", "<b>black</b>")]),
]

FULL_METRICS = {
    "accuracy": 0.71, "recall@10": 0.93, "retrieval_accuracy": 0.52, "nil_precision": 0.6, "nil_recall": 0.5,
    "n_mentions": 10, "recall@1": 0.52, "f1": 0.7, "disambiguation_f1": 0.75, "n_nil_mentions": 1,
    "baseline": {"char_tfidf": {"accuracy": 0.41, "recall@10": 0.8}},
    "ablations": {
        "retrieval only": {"accuracy": 0.52, "disambiguation_f1": 0.55, "recall@10": 0.93},
        "text stream only": {"accuracy": 0.6, "disambiguation_f1": 0.63, "recall@10": 0.93,
                             "accuracy_vs_full": {"value": -0.11, "ci95": [-0.2, -0.02], "gains": 1, "losses": 12,
                                                  "n_mentions": 100}},
        "full without image stream": {"accuracy": 0.68, "disambiguation_f1": 0.7, "recall@10": 0.93},
        "full: extracted attributes": {"accuracy": 0.71, "disambiguation_f1": 0.75, "recall@10": 0.93},
    },
    "calibration": {
        "method": "isotonic", "ece": 0.031, "ece_uncalibrated": 0.12,
        "reliability": [
            {"lo": i / 10, "hi": (i + 1) / 10, "n": 0 if i == 0 else 10 * i, "confidence": i / 10 + 0.05,
             "accuracy": min(1.0, i / 10 + 0.02)}
            for i in range(10)
        ],
        "precision_at_coverage": [
            {"coverage": c / 10, "precision": 1.0 - 0.02 * c, "threshold": 1.0 - c / 10} for c in range(1, 11)
        ],
        "coverage_at_precision": {"0.95": 0.25, "0.99": None},
    },
    "fusion": {
        "weights": {"retrieval": 0.3, "text": 0.5, "image": 0.2},
        "grid": [
            {"retrieval": r / 10, "text": t / 10, "image": (10 - r - t) / 10, "accuracy": 0.4 + 0.03 * t + 0.01 * r}
            for r in range(11) for t in range(11 - r)
        ],
    },
    "folds": {
        "k": 3,
        "mean": {"accuracy": 0.7, "recall@10": 0.92},
        "ci95": {"accuracy": [0.65, 0.75], "recall@10": [0.9, 0.94]},
        "per_fold": [{"accuracy": 0.68, "recall@10": 0.91}, {"accuracy": 0.7, "recall@10": 0.92},
                     {"accuracy": 0.72, "recall@10": 0.93}],
    },
}

SECTIONS = ("Headline", "Other metrics", "Ablations", "Calibration", "Fusion weights", "Cross-validation folds",
            "Errors by deciding attribute type", "Linked examples")


def _images(html_path: Path) -> list[Path]:
    srcs = re.findall(r'<img src="([^"]+)"', html_path.read_text(encoding="utf-8"))
    return [html_path.parent / s for s in srcs]


def test_full_report_renders_every_section_with_decodable_charts(tmp_path: Path) -> None:
    path = write_report(FULL_METRICS, ROWS, tmp_path / "run", entities=ENTITIES, title="demo <run>", max_examples=6)
    assert path == tmp_path / "run" / "report.html" and path.exists()
    page = path.read_text(encoding="utf-8")
    for heading in SECTIONS:
        assert f"<h2>{heading}</h2>" in page
    assert "could not be rendered" not in page
    images = _images(path)
    assert {p.name for p in images} == {"ablations.png", "reliability.png", "precision_coverage.png", "fusion_grid.png",
                                        "errors_by_type.png"}
    for image in images:
        assert image.parent == tmp_path / "run" / "report_files" and image.exists()
        with Image.open(image) as im:
            im.verify()
        with Image.open(image) as im:
            assert im.format == "PNG" and im.size[0] >= 300 and im.size[1] >= 200
    # untrusted text is escaped, never markup; no network or script anywhere
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<b>black</b>" not in page and "&lt;b&gt;black&lt;/b&gt;" in page
    assert "demo &lt;run&gt;" in page
    assert "http://" not in page and "https://" not in page
    # the headline shows the baseline; examples mark attributes against the answer and the gold
    assert "baseline: char_tfidf" in page
    # an ablation row's paired difference from the pipeline, and a dash for rows without one
    assert "accuracy vs full [95%]" in page and "-0.110 [-0.200, -0.020] · 1 / 12" in page
    assert "matched" in page and "contradicted" in page
    assert page.count('class="example"') == 6


def test_importing_the_module_imports_neither_matplotlib_nor_ray() -> None:
    code = ("import sys, ameli_ray.evaluation.report; "
            "assert not [m for m in sys.modules if m.split('.')[0] in ('matplotlib', 'ray')], 'heavy import'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_bare_metrics_and_rows_without_confidence_still_render(tmp_path: Path) -> None:
    rows = [{k: v for k, v in r.items() if k != "confidence"} for r in ROWS[:3]]
    path = write_report({"accuracy": 0.5}, rows, tmp_path)
    page = path.read_text(encoding="utf-8")
    assert "<h2>Headline</h2>" in page and "<h2>Linked examples</h2>" in page
    for absent in ("Calibration", "Ablations", "Fusion weights", "Cross-validation folds", "Errors by deciding"):
        assert f"<h2>{absent}" not in page
    assert _images(path) == [] and "could not be rendered" not in page


def test_empty_inputs_and_odd_rows_do_not_crash(tmp_path: Path) -> None:
    rows = [{}, {"mention_id": 3, "gold_entity_id": NAN, "candidate_ids": None, "attributes": None, "confidence": "high"}]
    metrics = {"calibration": {"method": "platt"}, "fusion": {"grid": []}, "folds": {}, "ablations": {"x": {}}}
    path = write_report(metrics, rows, tmp_path, entities={})
    assert path.exists() and "could not be rendered" not in path.read_text(encoding="utf-8")
    assert write_report({}, [], tmp_path / "empty").exists()


@pytest.mark.parametrize(
    ("key", "value", "kind"),
    [
        ("Color", "Onyx Black", "colour"),
        ("colour", "", "colour"),
        ("Finish", "Matte", "colour"),
        ("Storage Capacity", "256GB", "size/capacity"),
        ("Screen Size", "6.1 inches", "size/capacity"),
        ("Variant", "1TB", "size/capacity"),
        ("Spec", '27"', "size/capacity"),
        ("Battery", "5000 mAh", "size/capacity"),
        ("Model Number", "anything", "model code"),
        ("MPN", "", "model code"),
        ("Part Number", "x", "model code"),
        ("Series", "DCS-1100", "model code"),
        ("Type", "KDL40V5100", "model code"),
        ("Brand", "Nova", "other"),
        ("Carrier", "Unlocked", "other"),
        ("Type", "A1", "other"),  # too short for a code
    ],
)
def test_attribute_type(key: str, value: str, kind: str) -> None:
    assert attribute_type(key, value) == kind


def test_attribute_error_breakdown_by_deciding_type() -> None:
    b = attribute_error_breakdown(ROWS, ENTITIES)
    # m01: model number and capacity differ -> size/capacity (model codes come last); m02: colour; m03: size;
    # m04: same values up to case -> none differs; m05: answered no match; m10: answer unknown -> unclassified
    assert b["errors_by_type"] == {"model code": 0, "size/capacity": 2, "colour": 1, "other": 0,
                                   "no attribute differs": 1, "answered no match": 1}
    assert b["n_errors"] == 5 and b["n_unclassified"] == 1
    assert b["differing_by_type"] == {"model code": 1, "size/capacity": 2, "colour": 1, "other": 0}
    # mentions whose gold has a candidate differing in colour: m02 (wrong), m05 (wrong), m06 (right), m07 (right)
    assert b["with_sibling_by_type"]["colour"] == {"n": 4, "right": 2, "accuracy": 0.5}
    assert b["with_sibling_by_type"]["other"] == {"n": 0, "right": 0, "accuracy": None}


def test_breakdown_priority_can_be_changed() -> None:
    b = attribute_error_breakdown(ROWS[:1], ENTITIES, priority=("model code", "size/capacity", "colour", "other"))
    assert b["errors_by_type"]["size/capacity"] == 0 and b["errors_by_type"]["model code"] == 1


def test_prices_and_names_never_decide_an_error() -> None:
    entities = {"a": {"Price": "$10", "Color": "Black", "Product Name": "X1"}, "b": {"Price": "$12", "Color": "Black", "Product Name": "X2"}}
    rows = [{"mention_id": "m", "gold_entity_id": "a", "entity_id": "b", "candidate_ids": ["b", "a"]}]
    b = attribute_error_breakdown(rows, entities)
    assert b["errors_by_type"]["no attribute differs"] == 1 and b["errors_by_type"]["other"] == 0

"""The ablation rows recomputed from stored scores: what each stream adds."""

import math

from ameli_ray.evaluation.ablations import FULL_ROW, VS_FULL, add_paired_differences, pool_folds, recombined_rows
from ameli_ray.fusion import FusionModel

UNIT = {s: (0.0, 1.0) for s in ("retrieval", "text", "image")}


def _row(mid: str, gold: str, retrieval, text, image, contradicted=None) -> dict:
    ids = [f"{mid}-{i}" for i in range(len(retrieval))]
    return {
        "mention_id": mid, "gold_entity_id": gold, "entity_id": "", "candidate_ids": ids,
        "candidate_scores": retrieval, "text_stream_scores": text, "image_stream_scores": image,
        "contradicted": contradicted or [False] * len(ids), "errors": [],
    }


def test_each_stream_is_left_out_in_turn_and_the_rest_renormalised():
    # m1: retrieval is wrong, the text stream right; m2: retrieval wrong, the image stream right
    rows = [
        _row("m1", "m1-1", [1.0, 0.0], [0.0, 3.0], [0.0, 0.0]),
        _row("m2", "m2-1", [1.0, 0.0], [0.0, 0.0], [0.0, 3.0]),
    ]
    fusion = FusionModel(weights={"retrieval": 0.4, "text": 0.3, "image": 0.3}, standardisation=UNIT)
    full = [{**r, "entity_id": r["gold_entity_id"]} for r in rows]  # what the full pipeline answered
    table = recombined_rows(full, fusion, top_n=10)
    assert table["retrieval only"]["accuracy"] == 0.0
    assert table["full: extracted attributes"]["accuracy"] == 1.0
    # without text: 0.4/0.7 retrieval + 0.3/0.7 image: m2 right (0.43 * 3 > 0.57), m1 wrong
    assert math.isclose(table["full without text stream"]["accuracy"], 0.5)
    assert math.isclose(table["full without image stream"]["accuracy"], 0.5)
    assert table["text stream only"]["accuracy"] == 0.5 and table["image stream only"]["accuracy"] == 0.5


def test_no_row_for_a_stream_without_weight_or_without_scores():
    nan = float("nan")
    rows = [_row("m1", "m1-0", [1.0, 0.0], [2.0, 0.0], [nan, nan])]
    fusion = FusionModel(weights={"retrieval": 1.0, "text": 0.0, "image": 0.0}, standardisation=UNIT)
    table = recombined_rows(rows, fusion, top_n=10)
    assert "full without text stream" not in table and "full without image stream" not in table
    assert "image stream only" not in table  # no image scores at all (text-only data)
    only_text = FusionModel(weights={"retrieval": 0.0, "text": 1.0, "image": 0.0}, standardisation=UNIT)
    assert "full without text stream" not in recombined_rows(rows, only_text, top_n=10)  # nothing would be left


def test_each_row_is_compared_with_the_pipeline_on_the_same_mentions():
    # the pipeline gets m1 and m2 right (text, image) and m3 wrong (it answers m3-1); the image
    # stream alone gets m2 and m3, not m1; retrieval alone only m3
    rows = [
        _row("m1", "m1-1", [1.0, 0.0], [0.0, 3.0], [0.0, 0.0]),
        _row("m2", "m2-1", [1.0, 0.0], [0.0, 0.0], [0.0, 3.0]),
        _row("m3", "m3-0", [1.0, 0.0], [0.0, 3.0], [3.0, 0.0]),
        {**_row("n1", "", [1.0, 0.0], [0.0, 0.0], [0.0, 0.0]), "entity_id": ""},  # no matching product
    ]
    full = [{**r, "entity_id": {"m1": "m1-1", "m2": "m2-1", "m3": "m3-1"}.get(r["mention_id"], "")} for r in rows]
    fusion = FusionModel(weights={"retrieval": 0.4, "text": 0.3, "image": 0.3}, standardisation=UNIT)
    answers: dict = {}
    table = recombined_rows(full, fusion, top_n=10, answers_out=answers)
    assert set(answers) == set(table) - {FULL_ROW} and set(answers["image stream only"]) == {"m1", "m2", "m3", "n1"}
    add_paired_differences(table, full, answers, seed=1)
    assert VS_FULL not in table[FULL_ROW]
    image = table["image stream only"][VS_FULL]
    # m3 gained, m1 lost: level, and with three reviews the interval spans a loss and a gain
    assert (image["gains"], image["losses"], image["value"], image["n_mentions"]) == (1, 1, 0.0, 3)
    assert image["ci95"][0] < 0 < image["ci95"][1]
    retrieval = table["retrieval only"][VS_FULL]  # right on m3 only
    assert (retrieval["gains"], retrieval["losses"]) == (1, 2) and math.isclose(retrieval["value"], -1 / 3, abs_tol=1e-4)

    # cross-validation: two folds' tables averaged by their mentions, the difference taken over all
    # the pooled mentions (and only for rows answered on every one of them)
    folds = [{"image stream only": {"accuracy": 1.0, "n_mentions": 1, VS_FULL: {"value": 0.0}},
              "text stream only": {"accuracy": 0.5, "n_mentions": 1}},
             {"image stream only": {"accuracy": 0.5, "n_mentions": 2, VS_FULL: {"value": 0.5}}}]
    pooled = pool_folds(folds, full, {"image stream only": answers["image stream only"],
                                      "text stream only": {"m1": "m1-1"}})
    assert math.isclose(pooled["image stream only"]["accuracy"], 2 / 3, abs_tol=1e-4)
    assert pooled["image stream only"]["n_mentions"] == 3
    assert pooled["image stream only"][VS_FULL]["gains"] == 1 and pooled["image stream only"][VS_FULL]["losses"] == 1
    assert pooled["text stream only"] == {"accuracy": 0.5, "n_mentions": 1}  # answers missing for m2, m3: no difference

"""The verbs end to end on small data: evaluate (in-process) and the demo (Ray + local S3)."""

import json

import pytest

from ameli_ray import workflows
from ameli_ray.config import AmeliConfig

METRIC_KEYS = {"recall@1", "recall@10", "recall@20", "recall@50", "recall@100", "accuracy", "n_mentions"}


@pytest.mark.slow
def test_evaluate_writes_metrics(toy_dir, tmp_path):
    metrics = workflows.evaluate(
        AmeliConfig(), str(toy_dir / "entities.json"), str(toy_dir / "mentions.json"), str(tmp_path), engine="local", train=False
    )
    on_disk = json.loads((tmp_path / "metrics.json").read_text())
    assert METRIC_KEYS <= set(on_disk) and on_disk == metrics
    assert metrics["n_mentions"] == 6 and metrics["accuracy"] == 1.0 and metrics["recall@10"] == 1.0


@pytest.mark.integration
@pytest.mark.ray
def test_demo_on_a_small_catalogue(tmp_path):
    """The main job as `make demo` runs it, on 60 products: local S3 server, local Ray, Ray Data,
    Ray Train (with a training run shortened further than the demo's own profile)."""
    config = AmeliConfig.load(None, [
        "train.max_train_mentions=24", "train.candidates=3", "train.image_epochs=2",
        "disambiguation.text.max_seq_length=32", "disambiguation.text.frozen_layers=5",
    ])
    metrics = workflows.demo(config, str(tmp_path), n_products=60, seed=3, engine="ray")
    on_disk = json.loads((tmp_path / "metrics.json").read_text())
    assert METRIC_KEYS | {"retrieval_accuracy", "disambiguation_f1", "nil_precision", "nil_recall"} <= set(on_disk)
    assert {"retrieval only", "text stream only", "image stream only", "no attributes", "full: gold attributes",
            "gold candidates (upper bound)"} <= set(on_disk["ablations"])
    # each row against the pipeline on the same reviews, with a paired interval
    vs_full = on_disk["ablations"]["image stream only"]["accuracy_vs_full"]
    assert vs_full["n_mentions"] == on_disk["n_mentions"] and vs_full["ci95"][0] <= vs_full["value"] <= vs_full["ci95"][1]
    assert "accuracy_vs_full" not in on_disk["ablations"]["full: extracted attributes"]
    assert on_disk["training"]["text"]["examples"] == 24 and on_disk["model"].startswith("s3://ameli-demo/models/")
    assert on_disk["n_mentions"] > 0
    # seed 3 leaves two products out of the KB: their reviews are "no matching product" mentions
    assert on_disk["n_nil_mentions"] > 0
    assert on_disk["n_mentions"] + on_disk["n_nil_mentions"] == metrics["catalogue"]["n_mentions"]["test"]
    # retrieval works on the generated catalogue: the right product is almost always in the top 10
    assert on_disk["recall@10"] >= 0.8
    assert (tmp_path / "links_test.parquet").exists()
    # every answer carries a calibrated confidence; the figures and the report say what it buys
    assert on_disk["calibration"]["method"] in ("temperature", "platt", "isotonic")
    assert on_disk["calibration"]["n"] == on_disk["n_mentions"] + on_disk["n_nil_mentions"]
    assert 0 <= on_disk["baseline"]["char_tfidf"]["accuracy"] <= 1 and "grid" in on_disk["fusion"]
    assert (tmp_path / "report.html").exists() and any((tmp_path / "report_files").glob("*.png"))
    # the demo times its own steps (what BENCHMARKS.md quotes): every step, summing to the total
    steps = on_disk["wall_seconds_per_step"]
    assert list(steps)[:5] == ["catalogue", "upload", "start", "KB build", "training"] and all(v >= 0 for v in steps.values())
    assert abs(sum(steps.values()) - on_disk["wall_seconds"]) < 0.5 and steps["training"] > 0
    assert on_disk["fusion"]["retrieval_weights"] and on_disk["fusion"]["retrieval_weights"]["chargram"] >= 0


def test_build_kb_refuses_an_existing_version_before_reading_anything(tmp_path):
    from ameli_ray.errors import StorageError

    (tmp_path / "kb" / "v1").mkdir(parents=True)
    (tmp_path / "kb" / "v1" / "manifest.json").write_text("{}")
    with pytest.raises(StorageError, match="v1 already exists"):  # not the missing entities file
        workflows.build_kb(AmeliConfig(), str(tmp_path / "nothing.json"), str(tmp_path / "kb"), engine="local", version="v1")


@pytest.mark.slow
def test_evaluate_survives_a_rejected_record(toy_dir, tmp_path):
    """A bad line is set aside by the linking step and must not sink the scoring afterwards."""
    good = [
        {"id": f"m{m['review_id']}", "text": f"{m['header']}. {m['body']}",
         "image_uris": [str(toy_dir / "cleaned_review_images" / p) for p in m["review_image_path"]],
         "gold_entity_id": m["gold_entity_info"]["id"]}
        for m in json.loads((toy_dir / "mentions.json").read_text())
    ]
    corpus = tmp_path / "mentions.jsonl"
    corpus.write_text("\n".join(json.dumps(g) for g in good) + '\n{"id": "broken", "text": \n')
    metrics = workflows.evaluate(AmeliConfig(), str(toy_dir / "entities.json"), str(corpus), str(tmp_path / "w"), engine="local", train=False)
    assert metrics["n_mentions"] == 6 and metrics["accuracy"] == 1.0
    assert "not valid JSON" in (tmp_path / "w" / "links" / "_rejected.jsonl").read_text()


@pytest.mark.slow
@pytest.mark.ray
def test_evaluate_trains_on_a_split_and_scores_only_the_held_out_part(tmp_path):
    from ameli_ray.catalog import generate_catalog
    from ameli_ray.formats import read_mentions
    from ameli_ray.storage import ObjectStore

    generate_catalog(tmp_path / "cat", n_products=30, seed=4)
    config = AmeliConfig.load(None, [
        "train.max_train_mentions=10", "train.candidates=3", "train.image_epochs=1", "train.text_epochs=1",
        "disambiguation.text.max_seq_length=32", "disambiguation.text.frozen_layers=5", "ray.num_cpus=2",
    ])
    mentions = str(tmp_path / "cat" / "mentions_train.json")
    metrics = workflows.evaluate(config, str(tmp_path / "cat" / "entities.json"), mentions, str(tmp_path / "w"),
                                 images_uri=str(tmp_path / "cat"), engine="local", ablations=False)
    train, dev, test = workflows.split_mentions(read_mentions(mentions, ObjectStore()))
    assert metrics["scored"]["split"] == {"train": len(train), "dev": len(dev), "test": len(test)}
    assert sorted(metrics["scored"]["mention_ids"]) == sorted(m.id for m in test)
    assert metrics["n_mentions"] == len(test) and "ablations" not in metrics
    assert metrics["training"]["text"]["examples"] == 10 and metrics["model"]
    # the split depends on the ids only, not on the order of the file
    shuffled = workflows.split_mentions(list(reversed(train + dev + test)))[2]
    assert sorted(m.id for m in shuffled) == sorted(m.id for m in test)


@pytest.mark.slow
@pytest.mark.ray
def test_evaluate_cross_validates_with_held_out_products_and_writes_a_report(tmp_path):
    """--folds 3 --nil-products 0.2: three models, every mention scored once by the model that did
    not see it; reviews of held-out products are never trained or tuned on, and are scored as
    "no matching product"; intervals, confidence figures, the baseline and the report are written."""
    from PIL import Image

    from ameli_ray.catalog import generate_catalog
    from ameli_ray.formats import read_mentions
    from ameli_ray.storage import ObjectStore

    generate_catalog(tmp_path / "cat", n_products=30, seed=4)
    config = AmeliConfig.load(None, [
        "train.max_train_mentions=10", "train.candidates=3", "train.image_epochs=1", "train.text_epochs=1",
        "disambiguation.text.max_seq_length=32", "disambiguation.text.frozen_layers=5", "ray.num_cpus=2",
        "disambiguation.fusion.target_precision=0.9",
    ])
    mentions = str(tmp_path / "cat" / "mentions_train.json")
    metrics = workflows.evaluate(config, str(tmp_path / "cat" / "entities.json"), mentions, str(tmp_path / "w"),
                                 images_uri=str(tmp_path / "cat"), engine="local", ablations=False, folds=3,
                                 nil_products=0.2)
    everything = read_mentions(mentions, ObjectStore())
    assert sorted(metrics["scored"]["mention_ids"]) == sorted(m.id for m in everything)
    held = metrics["scored"]["held_out_products"]["n_reviews"]
    assert held > 0 and metrics["n_nil_mentions"] == held
    for fold in metrics["scored"]["folds"]:  # held-out reviews are in no training or dev part
        assert fold["train"] + fold["dev"] + fold["test"] <= len(everything)
    assert sum(f["test"] for f in metrics["scored"]["folds"]) == len(everything)
    assert sum(f["train"] + f["dev"] for f in metrics["scored"]["folds"]) == 2 * (len(everything) - held)
    folds = metrics["folds"]
    assert folds["k"] == 3 and len(folds["per_fold"]) == 3 and len(metrics["training"]) == 3
    lo, hi = folds["pooled"]["accuracy"]["ci95"]
    assert lo <= metrics["accuracy"] <= hi and folds["pooled"]["accuracy"]["value"] == pytest.approx(metrics["accuracy"], abs=1e-4)
    assert "nil_recall" in folds["pooled"] and "baseline_char_tfidf_accuracy" in folds["pooled"]
    assert len(folds["per_fold_summary"]["accuracy"]["per_fold"]) == 3
    cal = metrics["calibration"]
    assert cal["n"] == len(everything) and cal["method"] and 0 <= cal["ece"] <= 1
    assert set(cal["coverage_at_precision"]) == {"0.95", "0.99"} and len(cal["precision_at_coverage"]) == 10
    assert metrics["fusion"]["target_precision"] == 0.9 and metrics["fusion"]["calibration"]["method"] in cal["method"]
    assert {"gate", "filter", "grid", "confidence_threshold"} <= set(metrics["fusion"])
    assert "errors_by_attribute_type" in metrics
    html = (tmp_path / "w" / "report.html").read_text()
    assert "report_files/" in html and json.loads((tmp_path / "w" / "metrics.json").read_text())["folds"]["k"] == 3
    for png in (tmp_path / "w" / "report_files").glob("*.png"):
        Image.open(png).verify()

"""The verbs end to end on small data: evaluate (in-process) and the demo (Ray + local S3)."""

import json

import pytest

from ameli_ray.config import AmeliConfig
from ameli_ray import workflows

METRIC_KEYS = {"recall@1", "recall@10", "recall@20", "recall@50", "recall@100", "accuracy", "n_mentions"}


@pytest.mark.slow
def test_evaluate_writes_metrics(toy_dir, tmp_path):
    metrics = workflows.evaluate(
        AmeliConfig(), str(toy_dir / "entities.json"), str(toy_dir / "mentions.json"), str(tmp_path), engine="local"
    )
    on_disk = json.loads((tmp_path / "metrics.json").read_text())
    assert METRIC_KEYS <= set(on_disk) and on_disk == metrics
    assert metrics["n_mentions"] == 6 and metrics["accuracy"] == 1.0 and metrics["recall@10"] == 1.0


@pytest.mark.integration
@pytest.mark.ray
def test_demo_on_a_small_catalogue(tmp_path):
    """The main job as `make demo` runs it, on 60 products: local S3 server, local Ray, Ray Data."""
    metrics = workflows.demo(AmeliConfig(), str(tmp_path), n_products=60, seed=3, engine="ray")
    on_disk = json.loads((tmp_path / "metrics.json").read_text())
    assert METRIC_KEYS <= set(on_disk)
    assert on_disk["n_mentions"] > 0
    assert on_disk["n_mentions"] == metrics["catalogue"]["n_mentions"]["test"]
    # retrieval works on the generated catalogue: the right product is almost always in the top 10
    assert on_disk["recall@10"] >= 0.8
    assert (tmp_path / "links_test.parquet").exists()


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
    metrics = workflows.evaluate(AmeliConfig(), str(toy_dir / "entities.json"), str(corpus), str(tmp_path / "w"), engine="local")
    assert metrics["n_mentions"] == 6 and metrics["accuracy"] == 1.0
    assert "not valid JSON" in (tmp_path / "w" / "links" / "_rejected.jsonl").read_text()

import pytest

from ameli_ray.config import AmeliConfig


def test_defaults_are_the_embedded_default():
    cfg = AmeliConfig()
    assert cfg.s3.endpoint_url is None and cfg.s3.embedded
    assert cfg.ray.address == "local"
    assert cfg.text_encoder.model.startswith("packaged:")


def test_precedence_file_then_env_then_overrides(tmp_path, monkeypatch):
    path = tmp_path / "cfg.yaml"
    path.write_text("retrieval:\n  top_k: 50\n  pool_per_channel: 300\ns3:\n  region: eu-west-1\n")
    monkeypatch.setenv("AMELI_S3__REGION", "us-west-2")
    cfg = AmeliConfig.load(path, ["retrieval.weights.text=0.7", "index.kind=hnsw"])
    assert cfg.retrieval.top_k == 50 and cfg.retrieval.pool_per_channel == 300
    assert cfg.s3.region == "us-west-2"  # environment over file
    assert cfg.retrieval.weights.text == 0.7 and cfg.index.kind == "hnsw"


def test_bad_values_are_refused_with_the_field_name(tmp_path):
    with pytest.raises(ValueError, match="top_k"):
        AmeliConfig.load(None, ["retrieval.top_k=0"])
    with pytest.raises(ValueError, match="unknown_field"):
        AmeliConfig.load(None, ["retrieval.unknown_field=1"])
    with pytest.raises(ValueError, match="section.field=value"):
        AmeliConfig.load(None, ["nonsense"])
    with pytest.raises(FileNotFoundError):
        AmeliConfig.load(tmp_path / "missing.yaml")


def test_yaml_dump_roundtrips(tmp_path):
    cfg = AmeliConfig.load(None, ["retrieval.top_k=7"])
    path = tmp_path / "c.yaml"
    path.write_text(cfg.dump_yaml())
    assert AmeliConfig.load(path).retrieval.top_k == 7


def test_a_section_given_in_part_keeps_the_defaults_of_its_factory(tmp_path, monkeypatch):
    """`--set link_stage.concurrency=2` once rebuilt link_stage from StageResources' class
    defaults: batch 64, no thread setting, and the Ray Data stages lost their 0.5 CPUs."""
    default = AmeliConfig()
    config = AmeliConfig.load(None, ["link_stage.concurrency=2", "ocr_stage.num_gpus=1", "serve.ingress.max_ongoing_requests=128"])
    assert config.link_stage.concurrency == 2
    assert config.link_stage.model_copy(update={"concurrency": 1}) == default.link_stage
    assert config.ocr_stage.num_cpus == default.ocr_stage.num_cpus == 0.5 and config.ocr_stage.num_gpus == 1
    assert config.serve.ingress.num_cpus == default.serve.ingress.num_cpus == 0.25
    path = tmp_path / "c.yaml"
    path.write_text("text_stage: {concurrency: 4, num_gpus: 0.5}\n")
    monkeypatch.setenv("AMELI_RETRIEVE_STAGE__CONCURRENCY", "3")
    config = AmeliConfig.load(path)
    assert (config.text_stage.batch_size, config.text_stage.threads, config.text_stage.num_gpus) == (128, 2, 0.5)
    assert (config.retrieve_stage.concurrency, config.retrieve_stage.num_cpus) == (3, 0.5)
    # what the user did not set stays unset: the demo profile fills only those
    assert AmeliConfig.load(None, ["train.text_epochs=5"]).train.model_fields_set == {"text_epochs"}

"""Relinking a sharded corpus exactly once, in-process: a rerun resumes where a crash stopped
and does nothing after success; other inputs are refused; --overwrite relinks."""

from pathlib import Path

import pytest

from ameli_ray import workflows
from ameli_ray.catalog.corpus import generate_corpus
from ameli_ray.config import AmeliConfig
from ameli_ray.errors import StorageError
from ameli_ray.storage import ObjectStore

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def sharded(toy_dir, tmp_path_factory):
    """The toy KB and a generated corpus of 6 gzip shards of its products (some lines malformed)."""
    root = tmp_path_factory.mktemp("sharded")
    config = AmeliConfig()
    kb = str(root / "kb")
    workflows.build_kb(config, str(toy_dir / "entities.json"), kb, engine="local")
    corpus = generate_corpus(str(toy_dir / "entities.json"), str(root / "corpus"), 60, shard_size=10, bad_share=0.05)
    return config, kb, str(root / "corpus"), corpus


def _answers(out: str) -> list[tuple[str, str]]:
    table = workflows.read_link_results(out, ObjectStore())
    return list(zip(table.column("mention_id").to_pylist(), table.column("entity_id").to_pylist()))


def test_a_crashed_job_resumes_and_a_finished_one_is_a_no_op(sharded, tmp_path, monkeypatch):
    from ameli_ray import corpus as corpus_module

    config, kb, corpus_uri, corpus = sharded
    reference = workflows.link(config, kb, corpus_uri, str(tmp_path / "ref"), engine="local").stats
    assert reference["n_mentions"] == corpus.n_mentions and reference["n_rejected"] == corpus.n_bad
    assert reference["shards"] == 6 and reference["answered"] + round(reference["no_match_share"] * 57) == 57
    expected = _answers(str(tmp_path / "ref"))
    assert len({m for m, _ in expected}) == len(expected) == corpus.n_mentions

    # the first run dies after committing two shards
    real_commit = corpus_module.JobOutput.commit
    calls = []

    def dying_commit(self, *args, **kwargs):
        if len(calls) == 2:
            raise KeyboardInterrupt("killed")
        calls.append(1)
        return real_commit(self, *args, **kwargs)

    out = str(tmp_path / "out")
    monkeypatch.setattr(corpus_module.JobOutput, "commit", dying_commit)
    with pytest.raises(KeyboardInterrupt):
        workflows.link(config, kb, corpus_uri, out, engine="local")
    assert [m for m, _ in _answers(out)] == [m for m, _ in expected[: len(_answers(out))]]  # committed shards only
    monkeypatch.setattr(corpus_module.JobOutput, "commit", real_commit)

    resumed = workflows.link(config, kb, corpus_uri, out, engine="local").stats
    assert resumed["shards_resumed"] == 2 and resumed["n_mentions"] == corpus.n_mentions
    assert _answers(out) == expected
    again = workflows.link(config, kb, corpus_uri, out, engine="local").stats
    assert again["already_done"] and again["n_mentions"] == corpus.n_mentions
    assert len(workflows.read_rejected(out, ObjectStore())) == corpus.n_bad


def test_changed_inputs_are_refused_and_overwrite_relinks(sharded, tmp_path):
    config, kb, corpus_uri, corpus = sharded
    out = str(tmp_path / "out")
    one_shard = f"{corpus_uri}/{corpus.shards[0].name}"
    workflows.link(config, kb, one_shard, out, engine="local")
    with pytest.raises(StorageError, match=r"another link job \(other inputs, input files\).*--overwrite"):
        workflows.link(config, kb, corpus_uri, out, engine="local")
    (Path(corpus_uri) / corpus.shards[0].name).touch()  # the same name, another file (mtime)
    with pytest.raises(StorageError, match=r"another link job \(other input files\)"):
        workflows.link(config, kb, one_shard, out, engine="local")
    other = AmeliConfig.load(None, ["retrieval.top_k=3"])
    with pytest.raises(StorageError, match="other settings"):
        workflows.link(other, kb, one_shard, out, engine="local")
    stats = workflows.link(other, kb, one_shard, out, engine="local", overwrite=True).stats
    assert stats["shards_resumed"] == 0 and stats["n_mentions"] == corpus.shards[0].mentions
    assert all(len(r["candidate_ids"]) == 3 for r in workflows.read_link_results(out, ObjectStore()).to_pylist())

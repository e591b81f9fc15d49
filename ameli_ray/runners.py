"""Runners: the same three operations (build a KB, link a corpus, retrieve candidates for
training) in-process or on Ray Data, behind one interface chosen once from `engine`.

    runner = make_runner("ray" | "local")
    with runner.session(config):            # a local Ray for the ray runner; nothing in-process
        kb, errors = runner.build_kb(config, entities, name)
        runner.link(config, kb_uri, mentions, out_uri)
        pairs = runner.retrieve(config, kb_uri, mentions)

Both assemble their linkers with `linker.load_linker`, so a result does not depend on the runner.
The in-process runner is here, Ray-free; the Ray Data one lives in `distributed/runner.py`.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, ContextManager, Literal, Protocol

from ameli_ray.config import AmeliConfig, with_model
from ameli_ray.schema import Entity, LinkResult, Mention
from ameli_ray.storage import ObjectStore, join_uri

if TYPE_CHECKING:
    import numpy as np

    from ameli_ray.corpus import CorpusJob, OnCommit
    from ameli_ray.encoders import ImageEncoder, TextEncoder
    from ameli_ray.formats.shards import Shard
    from ameli_ray.kb.assets import KnowledgeBase
    from ameli_ray.kb.streamed import StreamedKBBuilder
    from ameli_ray.schema import MentionEvidence
    from ameli_ray.storage.commit import ShardCommit

Engine = Literal["ray", "local"]
ENGINES: tuple[str, ...] = ("ray", "local")


class Runner(Protocol):
    name: str

    def session(self, config: AmeliConfig) -> ContextManager[None]:
        """What the runner needs around its calls (a Ray session); nested sessions share one."""

    def build_kb(self, config: AmeliConfig, entities: list[Entity], name: str) -> tuple["KnowledgeBase", list[list[str]]]:
        """The KB of `entities`, indexed in memory (not yet written), and each entity's image errors."""

    def stream_kb(self, config: AmeliConfig, shards: list["Shard"], images_uri: str | None, builder: "StreamedKBBuilder",
                  staging_uri: str, batch_rows: int, encoders: tuple["TextEncoder", "ImageEncoder"]) -> str:
        """Reads, embeds and adds the entities of `shards` to `builder` batch by batch (the
        records a reader sets aside too); `staging_uri`: scratch space on the store, emptied by
        the caller. `encoders`: the caller's, loaded for the KB's identity, which an in-process
        runner embeds with instead of loading them again; Ray actors load their own. Returns the
        runner's name for the KB's build record."""

    def link(self, config: AmeliConfig, kb_uri: str, mentions: list[Mention], out_uri: str) -> None:
        """Links `mentions` against the KB version `kb_uri`; parquet parts under `out_uri`."""

    def link_corpus(self, job: "CorpusJob", on_commit: "OnCommit") -> dict[str, "ShardCommit"]:
        """Links the shards of `job` not yet committed, committing each as it completes."""

    def retrieve(self, config: AmeliConfig, kb_uri: str, mentions: list[Mention], kb: "KnowledgeBase | None" = None,
                 chargram_idf: "np.ndarray | None" = None) -> list[tuple[LinkResult, "MentionEvidence"]]:
        """Retrieval + attribute filter (no disambiguation) and the evidence of each mention, in
        order. `kb`: the KB of `kb_uri` when the caller already holds it (training does), which an
        in-process runner uses instead of reading it again; Ray actors load their own.
        `chargram_idf`: the char n-gram channel's idf (training's, fitted before its model exists)."""


def make_runner(engine: "str | Runner") -> Runner:
    """The runner of `engine`; a runner given instead is passed through, so a verb that calls
    others (evaluate, demo) chooses once and its steps share one runner."""
    if not isinstance(engine, str):
        return engine
    if engine == "local":
        return LocalRunner()
    if engine == "ray":
        from ameli_ray.distributed.runner import RayDataRunner

        return RayDataRunner()
    raise ValueError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")


class LocalRunner:
    """Everything in this process: tests, small corpora, benchmarks of the core."""

    name = "local"

    def session(self, config: AmeliConfig) -> ContextManager[None]:
        return contextlib.nullcontext()

    def build_kb(self, config: AmeliConfig, entities: list[Entity], name: str):
        from ameli_ray.kb.build import build_kb_in_process

        return build_kb_in_process(entities, config, ObjectStore(config.s3), name)

    def stream_kb(self, config, shards, images_uri, builder, staging_uri, batch_rows, encoders) -> str:
        from ameli_ray.kb.build import stream_kb_in_process

        stream_kb_in_process(config, shards, images_uri, builder, ObjectStore(config.s3), *encoders, batch_rows)
        return "in-process"

    def link(self, config: AmeliConfig, kb_uri: str, mentions: list[Mention], out_uri: str) -> None:
        from ameli_ray.linker import link_result_table, load_linker
        from ameli_ray.storage import parquet_bytes

        table = link_result_table(load_linker(config, kb_uri).link(mentions))
        store = ObjectStore(config.s3)
        store.ensure_bucket(out_uri)
        store.write_bytes(join_uri(out_uri, "part-00000.parquet"), parquet_bytes(table))

    def link_corpus(self, job: "CorpusJob", on_commit: "OnCommit"):
        from ameli_ray.corpus import link_corpus_in_process

        return link_corpus_in_process(job, on_commit)

    def retrieve(self, config: AmeliConfig, kb_uri: str, mentions: list[Mention], kb: "KnowledgeBase | None" = None,
                 chargram_idf: "np.ndarray | None" = None):
        from ameli_ray.linker import load_linker

        if not mentions:
            return []
        return load_linker(with_model(config, None), kb or kb_uri, chargram_idf=chargram_idf).retrieve(mentions)

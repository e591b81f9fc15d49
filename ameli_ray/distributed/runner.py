"""The Ray Data runner: the `Runner` interface of `ameli_ray.runners` over the actor-pool stages
of `distributed/data.py`. Chosen by `engine=ray` (the default)."""

from __future__ import annotations

from contextlib import AbstractContextManager

from ameli_ray.config import AmeliConfig, with_model
from ameli_ray.distributed.runtime import ray_session
from ameli_ray.schema import Entity, Mention
from ameli_ray.storage import ObjectStore


class RayDataRunner:
    name = "ray"

    def session(self, config: AmeliConfig) -> AbstractContextManager[None]:
        return ray_session(config.ray)

    def build_kb(self, config: AmeliConfig, entities: list[Entity], name: str):
        from ameli_ray.distributed.data import build_kb_with_ray

        with self.session(config):
            return build_kb_with_ray(entities, config, name)

    def link(self, config: AmeliConfig, kb_uri: str, mentions: list[Mention], out_uri: str) -> None:
        from ameli_ray.distributed.data import link_with_ray

        with self.session(config):
            link_with_ray(mentions, kb_uri, out_uri, config, ObjectStore(config.s3))

    def retrieve(self, config: AmeliConfig, kb_uri: str, mentions: list[Mention], kb=None):
        """`kb` is not used: each retrieval actor loads the KB version itself."""
        from ameli_ray.distributed.data import retrieve_with_ray

        if not mentions:
            return []
        with self.session(config):
            by_id = {e.mention.id: (r, e) for r, e in retrieve_with_ray(mentions, kb_uri, with_model(config, None))}
        return [by_id[m.id] for m in mentions]

"""The Ray Data runner: the `Runner` interface of `ameli_ray.runners` over the actor-pool stages
of `distributed/data.py`. Chosen by `engine=ray` (the default)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

from ameli_ray import errors
from ameli_ray.config import AmeliConfig, with_model
from ameli_ray.distributed.runtime import ray_session
from ameli_ray.errors import AmeliError
from ameli_ray.schema import Entity, Mention
from ameli_ray.storage import ObjectStore

# the last line of a traceback that Ray folded into an error message: "ameli_ray.errors.X: message"
_FOLDED = re.compile(r"ameli_ray\.errors\.(\w+): ([^\n]+)")


def user_error(exc: BaseException) -> AmeliError | None:
    """The ameli-ray error inside an exception Ray raised on the driver, as the in-process runner
    would have raised it; None when there is none (a bug, or a Ray failure of its own).

    A task's error comes back as a `RayTaskError` whose `cause` is the original exception (and
    which is itself an instance of its class); Ray Data may chain it further. An error in an
    actor's constructor (a retrieval actor reading a corrupt KB) comes back as `ActorDiedError`,
    which keeps only the text of the traceback: its last `ameli_ray.errors.X: message` line.
    """
    seen: set[int] = set()
    stack: list[BaseException | None] = [exc]
    while stack:
        e = stack.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        cause = getattr(e, "cause", None)
        if isinstance(e, AmeliError):
            original = cause if isinstance(cause, AmeliError) else e
            base = next(c for c in type(original).__mro__ if c.__module__ == errors.__name__)
            return base(*original.args) if original.args else base(str(original))
        stack.extend([cause if isinstance(cause, BaseException) else None, e.__cause__, e.__context__])
    found = _FOLDED.findall(str(exc))
    if found:
        name, message = found[-1]
        kind = getattr(errors, name, AmeliError)
        return (kind if isinstance(kind, type) and issubclass(kind, AmeliError) else AmeliError)(message.strip())
    return None


@contextmanager
def clear_errors() -> Iterator[None]:
    """Errors under the Ray engine end like in-process ones: the same one-line ameli-ray error
    (exit 2 from the CLI), not a Ray traceback."""
    try:
        yield
    except AmeliError:
        raise
    except Exception as exc:
        found = user_error(exc)
        if found is None:
            raise
        raise found from None


def verify_kb(config: AmeliConfig, kb_uri: str, manifest=None) -> None:
    """The KB's checksums, checked on the driver before any actor loads it: a corrupt KB then
    ends the run with the in-process runner's one line, and Ray never prints the tracebacks of
    the actors that would each have found it."""
    from ameli_ray.kb.assets import read_manifest
    from ameli_ray.storage.versioned import verify_version

    store = ObjectStore(config.s3)
    if manifest is None:
        kb_uri, manifest = read_manifest(kb_uri, store)
    verify_version(kb_uri, manifest, store, "KB")


class RayDataRunner:
    name = "ray"

    def session(self, config: AmeliConfig) -> AbstractContextManager[None]:
        return ray_session(config.ray)

    def build_kb(self, config: AmeliConfig, entities: list[Entity], name: str):
        from ameli_ray.distributed.data import build_kb_with_ray

        with self.session(config), clear_errors():
            return build_kb_with_ray(entities, config, name)

    def stream_kb(self, config: AmeliConfig, shards, images_uri, builder, staging_uri: str, batch_rows: int,
                  encoders=None) -> str:
        """`encoders` are not used: the embedding actors load their own."""
        from ameli_ray.distributed.data import stream_kb_with_ray

        with self.session(config), clear_errors():
            stream_kb_with_ray(config, shards, images_uri, builder, staging_uri, batch_rows)
        return "ray-data"

    def link(self, config: AmeliConfig, kb_uri: str, mentions: list[Mention], out_uri: str) -> None:
        from ameli_ray.distributed.data import link_with_ray

        verify_kb(config, kb_uri)
        with self.session(config), clear_errors():
            link_with_ray(mentions, kb_uri, out_uri, config, ObjectStore(config.s3))

    def link_corpus(self, job, on_commit):
        from ameli_ray.distributed.corpus import link_corpus_with_ray

        verify_kb(job.config, job.kb_uri, job.kb_manifest)
        with self.session(job.config), clear_errors():
            return link_corpus_with_ray(job, on_commit)

    def retrieve(self, config: AmeliConfig, kb_uri: str, mentions: list[Mention], kb=None, chargram_idf=None):
        """`kb` is not used: each retrieval actor loads the KB version itself."""
        from ameli_ray.distributed.data import retrieve_with_ray

        if not mentions:
            return []
        with self.session(config), clear_errors():
            found = retrieve_with_ray(mentions, kb_uri, with_model(config, None), chargram_idf)
            by_id = {e.mention.id: (r, e) for r, e in found}
        return [by_id[m.id] for m in mentions]

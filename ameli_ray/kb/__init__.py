"""KB assets: build from embeddings, manifest + checksums, load/verify, versions."""

from ameli_ray.kb.assets import KBManifest, KnowledgeBase, assemble_kb, load_kb, read_manifest, write_kb

__all__ = ["KBManifest", "KnowledgeBase", "assemble_kb", "load_kb", "read_manifest", "write_kb"]

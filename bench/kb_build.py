"""The KB build under Ray Data, end to end: does the driver's memory stay flat as the catalogue grows?

    .venv/bin/python bench/kb_build.py [--sizes 20000 100000] [--shard-size 10000]
        [--encoder tiny|minilm] [--builds memory streamed] [--workdir DIR] [--set section.field=value ...]

Catalogue: kb_scale.py's entities (Walmart->Amazon's 22,074 Amazon products, then copies with their
digits redrawn), written as gzip JSONL shards of `--shard-size` to the local S3 server. No product
images. Per size, two builds, each in its own process on a local Ray of this machine's cores:

- memory (the baseline): every entity read on the driver, then `workflows.build_kb(entities=...)`,
  the Ray Data build as it was before the streamed one (embedded by the actor pools, the KB
  assembled and written from the driver's memory);
- streamed: `ameli-ray build-kb --entities <the shards' prefix> --engine ray`, what users run.

Reported per build: wall seconds, entities/s, and the driver process's peak RSS (VmHWM, polled):
Ray's workers are not its children, so this is the driver alone. `--encoder tiny` (the default) is
a 1-layer random-weight text encoder with MiniLM's tokenizer (bench/corpus_scale.py), so the
machinery runs at full size in minutes; the dense vectors are then 32-d, not 384-d.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))


def write_catalogue(base: Path, n: int, shard_size: int, out: Path) -> Path:
    """`n` entities as gzip JSONL shards under `out` (made once per size)."""
    from kb_scale import synthesise_batches

    if (out / "_done").exists():
        return out
    out.mkdir(parents=True, exist_ok=True)
    lines: list[str] = []
    shard = 0

    def flush() -> None:
        nonlocal lines, shard
        with gzip.open(out / f"part-{shard:05d}.jsonl.gz", "wt", encoding="utf-8") as f:
            f.writelines(lines)
        lines, shard = [], shard + 1

    for entities, _ in synthesise_batches(base, n):
        for e in entities:
            lines.append(json.dumps({"id": e.id, "name": e.name, "category": e.category, "description": e.description,
                                     "attributes": e.attributes}) + "\n")
            if len(lines) == shard_size:
                flush()
    if lines:
        flush()
    (out / "_done").write_text(str(n))
    return out


def peak_rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def run(cmd: list[str], env: dict) -> dict:
    """A build process: its JSON summary (last stdout line), wall seconds and peak RSS."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = [0.0]

    def poll() -> None:
        while proc.poll() is None:
            peak[0] = max(peak[0], peak_rss_mb(proc.pid))
            time.sleep(0.2)

    watcher = threading.Thread(target=poll, daemon=True)
    watcher.start()
    stdout, stderr = proc.communicate()
    watcher.join()
    if proc.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{stderr[-3000:]}")
    summary = json.loads(stdout.strip().splitlines()[-1])
    return {**summary, "wall_s": round(time.perf_counter() - start, 1), "driver_peak_rss_mb": round(peak[0])}


def child_memory(args) -> None:
    """The baseline: the whole catalogue read on the driver, then the in-memory Ray Data build."""
    from ameli_ray import workflows
    from ameli_ray.config import AmeliConfig
    from ameli_ray.formats import read_entities
    from ameli_ray.formats.shards import list_shards
    from ameli_ray.storage import ObjectStore

    config = AmeliConfig.load(None, args.set)
    store = ObjectStore(config.s3)
    entities = [e for s in list_shards(args.entities, store) for e in read_entities(s.uri, store)]
    uri, _, stats = workflows.build_kb(config, args.entities, args.kb, entities=entities, engine="ray")
    print(json.dumps({"kb": uri, **stats}), flush=True)


def main() -> int:
    from _data import DEFAULT_EM

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[20_000, 100_000])
    parser.add_argument("--shard-size", type=int, default=10_000)
    parser.add_argument("--encoder", choices=["tiny", "minilm"], default="tiny")
    parser.add_argument("--builds", nargs="+", default=["memory", "streamed"], choices=["memory", "streamed"])
    parser.add_argument("--data", type=Path, default=DEFAULT_EM)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--set", action="append", default=[], metavar="section.field=value")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--entities", help=argparse.SUPPRESS)
    parser.add_argument("--kb", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child_memory(args)
        return 0

    from corpus_scale import tiny_text_encoder
    from kb_scale import base_data
    from rich.console import Console
    from rich.table import Table

    from ameli_ray.storage import LocalS3Server, ObjectStore

    console = Console(width=160)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="ameli-kb-build-"))
    base = base_data(args.data, workdir, [])
    overrides = list(args.set)
    if args.encoder == "tiny":
        overrides.append(f"text_encoder.model={tiny_text_encoder(workdir / 'tiny-encoder')}")
    rows = []
    with LocalS3Server() as server:
        s3 = server.settings()
        env = {**os.environ, "AMELI_S3__ENDPOINT_URL": s3.endpoint_url,
               "AMELI_S3__ACCESS_KEY_ID": s3.access_key_id.get_secret_value(),
               "AMELI_S3__SECRET_ACCESS_KEY": s3.secret_access_key.get_secret_value(),
               "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
        store = ObjectStore(s3)
        for n in args.sizes:
            local = write_catalogue(base, n, args.shard_size, workdir / f"catalogue-{n}")
            catalogue = f"s3://kb-build/catalogue-{n}"
            store.upload_dir(local, catalogue)
            sets = [a for o in overrides for a in ("--set", o)]
            for build in args.builds:
                kb = f"s3://kb-build/kb-{n}-{build}"
                if build == "streamed":
                    cmd = [sys.executable, "-m", "ameli_ray.cli", "build-kb", "--entities", catalogue + "/", "--kb", kb,
                           "--engine", "ray", *sets]
                else:
                    cmd = [sys.executable, __file__, "--child", "--entities", catalogue + "/", "--kb", kb, *sets]
                result = run(cmd, env)
                console.print(f"{n:>9,} {build:>8}: {result}")
                rows.append({"entities": n, "build": build, **result})
    table = Table(title=f"KB build on Ray Data ({args.encoder} text encoder, no images; driver = the build process)")
    for col in ("entities", "build", "wall s", "entities/s", "driver peak RSS MB"):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(f"{r['entities']:,}", r["build"], f"{r['wall_s']:.1f}", f"{r['entities'] / r['wall_s']:.1f}",
                      f"{r['driver_peak_rss_mb']:,}")
    console.print(table)
    (workdir / "results.json").write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

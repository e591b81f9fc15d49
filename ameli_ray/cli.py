"""`ameli-ray …`: each command a few lines over `ameli_ray.workflows`.

Every command takes `--config FILE` and repeatable `--set section.field=value` overrides of the
one configuration model (`ameli_ray.config.AmeliConfig`); `ameli-ray config` prints the result.
Errors of ameli-ray's own (bad input, unreachable S3, checksum mismatch…) print one clear line
and exit with status 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Optional

# Loopback-only Ray and offline model hubs, before anything imports ray or transformers.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # no weight-loading progress bars in job logs

import typer
from rich.console import Console
from rich.text import Text

from ameli_ray.config import AmeliConfig
from ameli_ray.errors import AmeliError

app = typer.Typer(
    help="Attribute-aware multimodal entity linking of product reviews, on Ray.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
# Messages go to logs as often as to terminals: never hard-wrap them at the console's width (80
# columns when stderr is not a terminal), or one error line becomes three and grep finds nothing.
console = Console(stderr=True, soft_wrap=True)

ConfigOpt = Annotated[Optional[Path], typer.Option("--config", "-c", help="YAML/JSON config file")]
SetOpt = Annotated[Optional[list[str]], typer.Option("--set", "-s", help="override: section.field=value (repeatable)")]
EngineOpt = Annotated[str, typer.Option(help="ray (Ray Data actor pools) or local (in-process)")]


def _config(config: Optional[Path], overrides: Optional[list[str]]) -> AmeliConfig:
    try:
        return AmeliConfig.load(config, overrides or [])
    except (ValueError, FileNotFoundError) as exc:
        raise AmeliError(f"configuration: {exc}") from None


def _say(message: str) -> None:
    console.print(f"[bold cyan]ameli-ray[/] {message}")


def _engine(engine: str) -> str:
    if engine not in ("ray", "local"):
        raise AmeliError(f"--engine must be 'ray' or 'local', got {engine!r}")
    return engine


def _print_metrics(metrics: dict, title: str) -> None:
    from ameli_ray.evaluation import metrics_table

    Console().print(metrics_table(metrics, title))
    for line in _summary_lines(metrics):
        _say(line)


def _summary_lines(metrics: dict) -> list[str]:
    """What the flat table cannot show: intervals over folds, the baseline, the confidence."""
    lines = []
    folds = metrics.get("folds")
    if folds:
        for key in ("accuracy", "recall@10", "disambiguation_f1", "nil_precision", "nil_recall", "baseline_char_tfidf_accuracy"):
            pooled = folds["pooled"].get(key)
            if pooled:
                per = folds["per_fold_summary"].get(key, {}).get("per_fold")
                lo, hi = pooled["ci95"]
                lines.append(f"{key}: {pooled['value']:.3f} (95% CI {lo:.3f}-{hi:.3f})"
                             + (f"; folds {', '.join(f'{v:.3f}' for v in per)}" if per else ""))
    baseline = (metrics.get("baseline") or {}).get("char_tfidf")
    if baseline and not folds:
        lines.append(f"char n-gram TF-IDF baseline: top-1 {baseline['accuracy']:.3f} on the same mentions")
    seen = metrics.get("seen_by_model")
    if seen and (seen["train"] or seen["dev"]):
        lines.append(f"WARNING: {seen['train']} of the {seen['n_scored']} scored mentions were in the model's training data "
                     f"and {seen['dev']} in its dev data: not held-out figures")
    cal = metrics.get("calibration")
    if cal:
        cov = cal["coverage_at_precision"]
        lines.append(f"confidence ({cal.get('method') or 'calibrated'}): ECE {cal['ece']:.3f}; coverage at 95% precision "
                     f"{cov['0.95']:.0%}, at 99% {cov['0.99']:.0%}")
    return lines


@app.command("config")
def show_config(config: ConfigOpt = None, set_: SetOpt = None) -> None:
    """Print the effective configuration (defaults < file < AMELI_* environment < --set)."""
    typer.echo(_config(config, set_).dump_yaml())


@app.command("generate-catalog")
def generate_catalog(
    out: Annotated[Path, typer.Option(help="output folder (AMELI release format)")],
    products: Annotated[int, typer.Option(help="number of products")] = 600,
    seed: int = 0,
) -> None:
    """Write the deterministic demo catalogue: products, rendered images, reviews, splits."""
    from ameli_ray.catalog import generate_catalog as generate

    summary = generate(out, n_products=products, seed=seed)
    _say(f"wrote {summary.n_entities} products and {sum(summary.n_mentions.values())} reviews to {out}")


@app.command("generate-corpus")
def generate_corpus(
    entities: Annotated[str, typer.Option(help="the catalogue the reviews are about (.json AMELI or .jsonl), local or s3://")],
    out: Annotated[str, typer.Option(help="output folder or s3:// prefix for the shards")],
    reviews: Annotated[int, typer.Option(help="number of reviews (lines)")] = 100_000,
    shard_size: Annotated[int, typer.Option(help="reviews per shard")] = 50_000,
    nil_share: Annotated[float, typer.Option(help="share of reviews about products not in the catalogue")] = 0.05,
    bad_share: Annotated[float, typer.Option(help="share of malformed lines (to exercise the rejected-records path)")] = 0.0,
    photos: Annotated[bool, typer.Option(help="give reviews 0-2 of their product's images as photos")] = True,
    gzip: Annotated[bool, typer.Option(help="write .jsonl.gz shards")] = True,
    seed: int = 0,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Write a synthetic review corpus of any size against an existing catalogue, as sharded
    JSONL (for scale runs of `link` that need no real data)."""
    from ameli_ray.catalog.corpus import generate_corpus as generate
    from ameli_ray.storage import ObjectStore

    summary = generate(entities, out, reviews, shard_size=shard_size, seed=seed, nil_share=nil_share, bad_share=bad_share,
                       photos=photos, gzip=gzip, store=ObjectStore(_config(config, set_).s3))
    _say(f"wrote {summary.n_reviews} reviews ({summary.n_nil} about no catalogue product, {summary.n_bad} malformed) "
         f"in {len(summary.shards)} shard(s) to {out}")


@app.command("convert-em")
def convert_em(
    dataset: Annotated[str, typer.Option(help="abt_buy, walmart_amazon or amazon_google")],
    src: Annotated[str, typer.Option(help="folder with the benchmark's CSV files")],
    out: Annotated[str, typer.Option(help="output folder or s3:// URI (AMELI format)")],
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Recast an entity-matching benchmark as a linking task in the AMELI format."""
    from ameli_ray.formats import EM_DATASETS
    from ameli_ray.formats import convert_em as convert
    from ameli_ray.storage import ObjectStore

    if dataset not in EM_DATASETS:
        raise AmeliError(f"unknown dataset {dataset!r}; known: {', '.join(EM_DATASETS)}")
    counts = convert(dataset, src, out, ObjectStore(_config(config, set_).s3))  # type: ignore[arg-type]
    _say(f"{dataset} -> {out}: {json.dumps(counts)}")


@app.command("build-kb")
def build_kb(
    entities: Annotated[str, typer.Option(help="the catalogue: a file, a folder/prefix or a glob of .jsonl[.gz] / .parquet / .json (AMELI) shards, local or s3://")],
    kb: Annotated[str, typer.Option(help="KB root, local or s3://; a new version is written under it")],
    images: Annotated[Optional[str], typer.Option(help="entity images folder (default: product_images beside the file)")] = None,
    name: Annotated[Optional[str], typer.Option(help="KB name (default: last part of --kb)")] = None,
    version: Annotated[Optional[str], typer.Option(help="version name, refused if it exists (default: a UTC timestamp and a random suffix)")] = None,
    engine: EngineOpt = "ray",
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Embed entities (text + images) with Ray Data, index them (FAISS, BM25, char n-grams) and write
    a new KB version, streamed: no process holds the whole catalogue, and invalid or repeated
    records are set aside in the version's rejected.jsonl."""
    from ameli_ray import workflows

    version_uri, _, stats = workflows.build_kb(
        _config(config, set_), entities, kb, images_uri=images, name=name, engine=_engine(engine),  # type: ignore[arg-type]
        version=version, say=_say,
    )
    typer.echo(json.dumps({"kb": version_uri, **stats}))


@app.command("link")
def link(
    kb: Annotated[str, typer.Option(help="KB root (its LATEST version) or a version folder")],
    mentions: Annotated[str, typer.Option(help="the corpus: a file, a folder/prefix or a glob of .jsonl[.gz] / .parquet / .json (AMELI) shards, local or s3://")],
    out: Annotated[str, typer.Option(help="output folder or s3:// URI: one committed parquet part per shard")],
    images: Annotated[Optional[str], typer.Option(help="review images folder (default: beside each shard; cleaned_review_images for .json)")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="replace the output of another job (or of this one) instead of refusing / resuming")] = False,
    engine: EngineOpt = "ray",
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Link a corpus of reviews, exactly once: answer, top-K candidates and per-channel scores as
    parquet. Run the same command again after a failure and it links only what is missing."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from ameli_ray import workflows

    columns = (TextColumn("shards"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task("", total=None)

        def progress(done: int, total: int, linked: int) -> None:
            bar.update(task, completed=done, total=total, description=f"{linked} mentions")

        run = workflows.link(
            _config(config, set_), kb, mentions, out, images_uri=images, engine=_engine(engine), say=_say,  # type: ignore[arg-type]
            overwrite=overwrite, progress=progress,
        )
    typer.echo(json.dumps(run.stats))


@app.command("evaluate")
def evaluate(
    entities: Annotated[str, typer.Option(help="entities file, local or s3://")],
    mentions: Annotated[str, typer.Option(help="labelled mentions file, local or s3://")],
    workdir: Annotated[Path, typer.Option(help="where the KB, the results and metrics.json go")],
    images: Annotated[Optional[str], typer.Option(help="folder holding product_images/ and cleaned_review_images/")] = None,
    train_mentions: Annotated[Optional[str], typer.Option(help="labelled mentions to train on (with --dev-mentions)")] = None,
    dev_mentions: Annotated[Optional[str], typer.Option(help="labelled mentions to tune fusion and the no-match threshold on")] = None,
    ablations: Annotated[bool, typer.Option(help="also compute the paper's ablation rows")] = True,
    train: Annotated[bool, typer.Option(help="--no-train: retrieval and the attribute filter only, all mentions scored")] = True,
    folds: Annotated[Optional[int], typer.Option(min=2, help="K-fold cross-validation: one model per fold, every mention scored once")] = None,
    nil_products: Annotated[Optional[float], typer.Option(
        min=0.0, max=0.9, help="hold out this share of the linked products from the KB; their reviews become 'no matching product' "
        "test reviews that training and dev never see")] = None,
    report: Annotated[bool, typer.Option(help="also write WORKDIR/report.html (charts, examples, errors by attribute type)")] = True,
    engine: EngineOpt = "ray",
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Build a KB, train the disambiguation model (Ray Train), link the mentions with the full
    pipeline, print the metrics and write WORKDIR/metrics.json and WORKDIR/report.html.

    Without --train-mentions/--dev-mentions the mentions are split 60/20/20 (by id hash) and only
    the held-out 20% is scored; with --folds K every mention is scored once, by the model of the
    fold that did not train on it, with 95% bootstrap intervals. With `--set
    disambiguation.model=URI` no training happens."""
    from ameli_ray import workflows

    cfg = _config(config, set_)
    metrics = workflows.evaluate(
        cfg, entities, mentions, str(workdir), images_uri=images, train_mentions_uri=train_mentions,
        dev_mentions_uri=dev_mentions, ablations=ablations, train=train, engine=_engine(engine), say=_say,  # type: ignore[arg-type]
        folds=folds, nil_products=nil_products or None, report=report,
    )
    _print_metrics(metrics, f"evaluate: {mentions}")
    _say(f"metrics written to {workdir / 'metrics.json'}")


@app.command("demo")
def demo(
    workdir: Annotated[Path, typer.Option(help="where the catalogue, results and metrics.json go")] = Path("demo-run"),
    products: Annotated[int, typer.Option(help="number of products in the generated catalogue")] = 600,
    seed: int = 0,
    ablations: Annotated[bool, typer.Option(help="also compute the paper's ablation rows")] = True,
    engine: EngineOpt = "ray",
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """The main job on the embedded default: generated catalogue, local S3, local Ray, KB build,
    training of both streams (Ray Train), batch linking of the test split with the full pipeline,
    metrics (and ablations) table and WORKDIR/metrics.json."""
    from rich.progress import Progress

    from ameli_ray import workflows

    cfg = _config(config, set_)
    with Progress(console=console, transient=True) as bar:
        task = bar.add_task("catalogue", total=None)

        def progress(stage: str, done: int, total: int) -> None:
            bar.update(task, description=f"catalogue: {stage}", completed=done, total=total)

        metrics = workflows.demo(cfg, str(workdir), n_products=products, seed=seed, engine=_engine(engine), say=_say, progress=progress, ablations=ablations)  # type: ignore[arg-type]
    _print_metrics(metrics, "demo: test split of the generated catalogue")
    _say(f"metrics written to {workdir / 'metrics.json'}")


@app.command("serve")
def serve_command(
    kb: Annotated[Optional[str], typer.Option(help="KB root or version to serve (default: serve.kb, else the embedded demo's)")] = None,
    model: Annotated[Optional[str], typer.Option(help="disambiguation model (default: disambiguation.model, else the demo's)")] = None,
    no_model: Annotated[bool, typer.Option("--no-model", help="retrieval and the attribute filter only")] = False,
    host: Annotated[Optional[str], typer.Option(help="address to listen on (default serve.host, 127.0.0.1)")] = None,
    port: Annotated[Optional[int], typer.Option(help="port (default serve.port, 8000)")] = None,
    demo_products: Annotated[int, typer.Option(help="size of the embedded demo catalogue, when it is built")] = 600,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Online linking over HTTP (Ray Serve): POST /v1/link. On the embedded default it starts a
    local S3, builds the demo KB and model once (cached), and serves on 127.0.0.1:8000."""
    from ameli_ray.serve.demo import serve_locally

    cfg = _config(config, set_)
    serve_locally(cfg, kb=kb, model=model, no_model=no_model, host=host or cfg.serve.host, port=port or cfg.serve.port,
                  say=_say, config_path=str(config.resolve()) if config else None, user_overrides=list(set_ or []),
                  n_products=demo_products)


@app.command("train")
def train(
    kb: Annotated[str, typer.Option(help="KB root or version folder, local or s3://")],
    train_mentions: Annotated[str, typer.Option(help="labelled mentions to train on, local or s3://")],
    dev_mentions: Annotated[str, typer.Option(help="labelled mentions to tune fusion and the no-match threshold on")],
    model: Annotated[str, typer.Option(help="model root to write a new version under, local or s3://")],
    images: Annotated[Optional[str], typer.Option(help="folder the mentions' relative photo paths are under")] = None,
    engine: EngineOpt = "ray",
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Train both disambiguation streams with Ray Train and tune fusion on dev; writes a new
    model version under MODEL. Re-running after a crash resumes from the last checkpoint."""
    from ameli_ray.formats import read_mentions
    from ameli_ray.runners import make_runner
    from ameli_ray.storage import ObjectStore
    from ameli_ray.training_run import train_model

    cfg = _config(config, set_)
    store = ObjectStore(cfg.s3)
    train_set, dev_set = read_mentions(train_mentions, store, images), read_mentions(dev_mentions, store, images)
    runner = make_runner(_engine(engine))
    with runner.session(cfg):
        outcome = train_model(cfg, kb, train_set, dev_set, model, engine=runner, say=_say)
    _print_metrics({**outcome["fusion"]["dev"], "model": outcome["model"]}, "train: dev metrics of the tuned fusion")


@app.command("kb-info")
def kb_info(
    kb: Annotated[str, typer.Option(help="KB root or version folder")],
    verify: Annotated[bool, typer.Option(help="read every file and check its sha256")] = True,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Show a KB's manifest; with --verify (default) load it and check every checksum."""
    from ameli_ray.kb.assets import load_kb, read_manifest
    from ameli_ray.storage import ObjectStore

    cfg = _config(config, set_)
    store = ObjectStore(cfg.s3)
    version_uri, manifest = read_manifest(kb, store)
    if verify:
        load_kb(version_uri, store, cfg.index)
    typer.echo(json.dumps({"uri": version_uri, "verified": verify, **manifest.model_dump(mode="json")}, indent=2))


@app.command("s3-server")
def s3_server(port: Annotated[int, typer.Option(help="port on 127.0.0.1")] = 9000) -> None:
    """Run a local S3 server (moto) on 127.0.0.1 until Ctrl-C, for multi-command sessions.
    Point the other commands at it with AMELI_S3__ENDPOINT_URL=http://127.0.0.1:PORT."""
    import signal

    from ameli_ray.storage import LocalS3Server
    from ameli_ray.storage.local_s3 import LOCAL_KEY, LOCAL_SECRET

    with LocalS3Server(port=port) as server:
        _say(f"S3 server on {server.endpoint_url} (access key {LOCAL_KEY}, secret {LOCAL_SECRET}); Ctrl-C stops it")
        try:
            signal.pause()
        except KeyboardInterrupt:
            pass


def error_line(exc: BaseException) -> Text:
    """`error: <message>` as one line: the message is plain text (a path with brackets in it is
    not rich markup) and its own line breaks are folded."""
    return Text.assemble(("error:", "bold red"), " ", " ".join(str(exc).split("\n")))


def main() -> None:
    try:
        app()
    except AmeliError as exc:
        console.print(error_line(exc), soft_wrap=True)
        sys.exit(2)


if __name__ == "__main__":
    main()

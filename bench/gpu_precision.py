"""fp32 against bf16 autocast for every model that runs, on one device: speed, memory and how far
the answers move.

    .venv/bin/python bench/gpu_precision.py [--device cuda] [--products 300] [--epochs 2]
        [--text-model PATH] [--image-models ameli-tiny-vit ViT-B-32] [--out gpu_precision.json]

The baseline is `mixed_precision=no` (fp32) in the same run, on the same inputs:
- text encoder (the retrieval bi-encoder): texts/s, the cosine between each fp32 and bf16
  vector, and text-only retrieval over the catalogue (top-1 accuracy and top-1 agreement);
- image encoders: images/s and the cosine of fp32 and bf16 vectors;
- text stream (the disambiguation cross-encoder): training steps through `TextTask.training_forward`
  (what Ray Train runs) with `train.mixed_precision` no / bf16, mentions/s and peak GPU memory;
  then each trained model scores the test mentions (accuracy over their candidates, pairs/s),
  and the fp32-trained model scores them under both precisions (argmax agreement, largest
  logit difference).

Data: the generated catalogue (no S3, no Ray, no FAISS: the script runs on a machine that holds
only torch, transformers, sentence-transformers, open_clip and pydantic). Candidates are each
mention's 10 nearest products by the fp32 text vectors, with the gold put in as training does;
the statement keys are the review's stated attributes (the generator knows them), where the
linker would use the keys it read. `--text-model` replaces the packaged MiniLM for both text
models (a local folder). Every figure the tables print is in the JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

MODES = ("no", "bf16")


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn, device: str, repeats: int) -> tuple[float, object]:
    """Median seconds of `repeats` calls after one warm-up call, and the last result."""
    out = fn()
    times = []
    for _ in range(repeats):
        sync(device)
        t0 = time.perf_counter()
        out = fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def cosines(a: np.ndarray, b: np.ndarray) -> dict:
    c = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-12)
    return {"cosine_min": float(c.min()), "cosine_mean": float(c.mean())}


def load_data(products: int, workdir: Path):
    from ameli_ray.catalog import generate_catalog
    from ameli_ray.formats import read_entities, read_mentions
    from ameli_ray.schema import NIL_ENTITY
    from ameli_ray.storage import ObjectStore

    store = ObjectStore()
    if not (workdir / "summary.json").exists():
        generate_catalog(workdir, n_products=products, seed=1)
    entities = read_entities(str(workdir / "entities.json"), store)
    labelled = [m for split in ("train", "dev", "test") for m in read_mentions(str(workdir / f"mentions_{split}.json"), store)
                if m.gold_entity_id and m.gold_entity_id != NIL_ENTITY]  # dev joins test: nothing here is tuned
    train_ids = {m.id for m in read_mentions(str(workdir / "mentions_train.json"), store)}
    train = [m for m in labelled if m.id in train_ids]
    test = [m for m in labelled if m.id not in train_ids]
    return entities, train, test


def text_encoder_rows(config, entities, mentions, device, repeats) -> tuple[list[dict], np.ndarray, np.ndarray]:
    from ameli_ray.encoders.text import TextEncoder

    texts = [e.text() for e in entities] + [m.text for m in mentions]
    gold = np.asarray([[e.id for e in entities].index(m.gold_entity_id) for m in mentions])
    rows, vectors = [], {}
    for mode in MODES:
        enc = TextEncoder(config.text_encoder.model_copy(update={"mixed_precision": mode}), device=device)
        seconds, vec = timed(lambda enc=enc: enc.encode(texts), device, repeats)
        vectors[mode] = vec
        ent, men = vec[: len(entities)], vec[len(entities):]
        top = np.argsort(-(men @ ent.T), axis=1)[:, :10]
        rows.append({"model": "text encoder", "mode": mode, "items": len(texts), "seconds": seconds,
                     "items_per_s": len(texts) / seconds, "retrieval_top1": float((top[:, 0] == gold).mean()),
                     "retrieval_top10": float((top == gold[:, None]).any(1).mean()), "top1": top[:, 0]})
    rows[1].update(cosines(vectors["no"], vectors["bf16"]), top1_agreement=float((rows[0]["top1"] == rows[1]["top1"]).mean()))
    ent, men = vectors["no"][: len(entities)], vectors["no"][len(entities):]
    for r in rows:
        r.pop("top1")
    return rows, ent, men


def image_encoder_rows(config, workdir: Path, names: list[str], device, repeats, limit: int, batch: int) -> list[dict]:
    from PIL import Image

    from ameli_ray.encoders.image import ImageEncoder

    paths = sorted((workdir / "product_images").rglob("*.jpg"))[: limit // 2] + sorted((workdir / "cleaned_review_images").rglob("*.jpg"))[: limit // 2]
    images = [Image.open(p).convert("RGB") for p in paths]
    rows = []
    for name in names:
        vectors = {}
        for mode in MODES:
            settings = config.image_encoder.model_copy(update={"model": name, "mixed_precision": mode, "batch_size": batch})
            enc = ImageEncoder(settings, device=device)
            seconds, vectors[mode] = timed(lambda enc=enc: enc.encode(images), device, repeats)
            rows.append({"model": f"image encoder {name}", "mode": mode, "items": len(images), "seconds": seconds,
                         "items_per_s": len(images) / seconds})
        rows[-1].update(cosines(vectors["no"], vectors["bf16"]))
    return rows


def text_rows_for(mentions, entities, ent_vec, men_vec, config, rng) -> list[dict]:
    from ameli_ray.disambiguation.examples import text_example, training_candidates

    ids = [e.id for e in entities]
    order = np.argsort(-(men_vec @ ent_vec.T), axis=1)[:, : config.train.candidates]
    rows = []
    for m, ranked in zip(mentions, order):
        cand, slot = training_candidates([ids[i] for i in ranked], m.gold_entity_id, config.train.candidates, rng)
        rows.append(text_example(m, sorted(m.gold_attributes), [entities[ids.index(c)] for c in cand], slot,
                                 config.disambiguation.text))
    return rows


def score_rows(model, rows, settings, device, batch: int = 64) -> tuple[np.ndarray, int]:
    """[n, C] logits of each row's candidates, and the pairs encoded."""
    from ameli_ray.disambiguation.examples import collate_text, n_slots
    from ameli_ray.disambiguation.statements import PairBatch

    model.settings = settings
    out, pairs = [], 0
    for start in range(0, len(rows), batch):
        premises, hypotheses, index, mask, _, match = collate_text(rows[start : start + batch], n_slots(settings))
        logits = model.score(PairBatch(premises, hypotheses, index.numpy(), mask.numpy()), match=match.numpy())
        pad = np.full((len(logits), 16), -np.inf, np.float32)
        pad[:, : logits.shape[1]] = logits
        out.append(pad)
        pairs += len(premises)
    return np.concatenate(out), pairs


def text_stream_rows(config, train_rows, test_rows, device, epochs, batch_mentions) -> list[dict]:
    from ameli_ray.disambiguation.tasks import TextTask

    gold = np.asarray([r["gold"] for r in test_rows])
    results, fp32_logits, fp32_model = [], None, None
    for mode in MODES:
        cfg = config.model_copy(update={"train": config.train.model_copy(update={"mixed_precision": mode})})
        task = TextTask(cfg)
        torch.manual_seed(0)
        model = task.build_model().to(device)
        opt = task.build_optimizer(model)
        model.train()
        if device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        steps, samples, seconds = 0, 0, 0.0
        for epoch in range(epochs):
            for start in range(0, len(train_rows), batch_mentions):
                sync(device)
                t0 = time.perf_counter()
                loss, n = task.training_forward(model, train_rows[start : start + batch_mentions], torch.device(device))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sync(device)
                # the first step pays for kernel selection and allocation: left out unless it is the only one
                if steps == 0:
                    first = (time.perf_counter() - t0, n)
                else:
                    seconds += time.perf_counter() - t0
                    samples += n
                steps += 1
        if samples == 0:
            seconds, samples = first
        peak = torch.cuda.max_memory_allocated() / 2**20 if device.startswith("cuda") else None
        model.eval()
        settings = config.disambiguation.text.model_copy(update={"mixed_precision": mode})
        t, (logits, pairs) = timed(lambda: score_rows(model, test_rows, settings, device), device, 1)
        results.append({"model": "text stream", "mode": mode, "train_steps": steps, "train_mentions_per_s": samples / seconds,
                        "train_peak_mib": peak, "final_loss": loss.item(), "test_mentions": len(test_rows),
                        "test_accuracy": float((logits.argmax(1) == gold).mean()), "score_pairs": pairs,
                        "score_pairs_per_s": pairs / t})
        if mode == "no":  # the fp32 model's fp32 scores: the baseline of the bf16 scoring below
            fp32_model, fp32_logits = model, logits
    base = fp32_logits
    half, _ = score_rows(fp32_model, test_rows, config.disambiguation.text.model_copy(update={"mixed_precision": "bf16"}), device)
    finite = np.isfinite(base)
    results[1].update(score_argmax_agreement=float((base.argmax(1) == half.argmax(1)).mean()),
                      score_max_abs_diff=float(np.abs(base[finite] - half[finite]).max()))
    return results


def fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float) and 0.99 < v < 1:
        return f"{v:.6f}"
    if isinstance(v, float):
        return f"{v:.4f}" if abs(v) < 10 else f"{v:,.1f}"
    return str(v)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--products", type=int, default=300)
    parser.add_argument("--epochs", type=int, default=2, help="text-stream training epochs per precision")
    parser.add_argument("--batch-mentions", type=int, default=16, help="text-stream training mentions per step")
    parser.add_argument("--max-train", type=int, default=None, help="cap on training mentions")
    parser.add_argument("--max-test", type=int, default=None, help="cap on test mentions")
    parser.add_argument("--repeats", type=int, default=3, help="timed encoder passes (median) after one warm-up")
    parser.add_argument("--images", type=int, default=512, help="images for the image encoders")
    parser.add_argument("--text-model", default=None, help="local folder for both text models (default: packaged MiniLM)")
    parser.add_argument("--image-models", nargs="+", default=["ameli-tiny-vit", "ViT-B-32"])
    parser.add_argument("--image-batch", type=int, default=128, help="images per forward pass")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="section.field=value, as the CLI's --set")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "ameli-bench-precision")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    console = Console(width=180)

    from ameli_ray.config import AmeliConfig

    sets = [f"text_encoder.model={args.text_model}", f"disambiguation.text.model={args.text_model}"] if args.text_model else []
    config = AmeliConfig.load(None, [*sets, *args.overrides])
    device = args.device
    env = {"device": torch.cuda.get_device_name(0) if device.startswith("cuda") else platform.processor() or "cpu",
           "torch": torch.__version__, "python": sys.version.split()[0], "threads": torch.get_num_threads()}
    console.print(f"device {device} ({env['device']}), torch {env['torch']}")
    entities, train, test = load_data(args.products, args.workdir)
    train, test = train[: args.max_train], test[: args.max_test]
    console.print(f"{len(entities)} products, {len(train)} training and {len(test)} test mentions")

    rows, ent_vec, men_vec = text_encoder_rows(config, entities, train + test, device, args.repeats)
    rng = np.random.default_rng(0)
    train_rows = text_rows_for(train, entities, ent_vec, men_vec[: len(train)], config, rng)
    test_rows = text_rows_for(test, entities, ent_vec, men_vec[len(train):], config, rng)
    rows += image_encoder_rows(config, args.workdir, args.image_models, device, args.repeats, args.images, args.image_batch)
    stream = text_stream_rows(config, train_rows, test_rows, device, args.epochs, args.batch_mentions)

    table = Table(title=f"encoders on {device}: fp32 (no) vs bf16 autocast, same inputs; ratio = bf16 / fp32 speed")
    for col in ("model", "mode", "items", "items/s", "ratio", "cos min", "cos mean", "retr top-1", "top-1 agree"):
        table.add_column(col, justify="right")
    for r in rows:
        base = next(x for x in rows if x["model"] == r["model"] and x["mode"] == "no")
        r["speedup"] = r["items_per_s"] / base["items_per_s"]
        table.add_row(r["model"], r["mode"], str(r["items"]), fmt(r["items_per_s"]), f"{r['speedup']:.2f}",
                      fmt(r.get("cosine_min")), fmt(r.get("cosine_mean")), fmt(r.get("retrieval_top1")), fmt(r.get("top1_agreement")))
    console.print(table)
    table = Table(title=f"text stream on {device}: {args.epochs} epochs of {len(train_rows)} mentions, then {len(test_rows)} test mentions")
    for col in ("mode", "train mentions/s", "ratio", "peak MiB", "final loss", "test acc", "score pairs/s", "ratio",
                "argmax agree", "max |dlogit|"):
        table.add_column(col, justify="right")
    for r in stream:
        r["train_speedup"] = r["train_mentions_per_s"] / stream[0]["train_mentions_per_s"]
        r["score_speedup"] = r["score_pairs_per_s"] / stream[0]["score_pairs_per_s"]
        table.add_row(r["mode"], fmt(r["train_mentions_per_s"]), f"{r['train_speedup']:.2f}", fmt(r["train_peak_mib"]),
                      fmt(r["final_loss"]), fmt(r["test_accuracy"]), fmt(r["score_pairs_per_s"]), f"{r['score_speedup']:.2f}",
                      fmt(r.get("score_argmax_agreement")), fmt(r.get("score_max_abs_diff")))
    console.print(table)
    if args.out:
        args.out.write_text(json.dumps({"env": env, "args": {k: str(v) for k, v in vars(args).items()},
                                        "encoders": rows, "text_stream": stream}, indent=1))
        console.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

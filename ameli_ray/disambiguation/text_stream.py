"""The text stream of disambiguation: a cross-encoder over (premise, hypothesis) pairs, after AMELI.

Each candidate has S slots (attribute statements, then the description pair; see `statements`).
The P unique pairs of a batch are encoded once; every pair's token states are pooled (CLS or
masked mean) into one feature; a candidate's S slot features (a learned `missing` vector where it
has no pair) are concatenated and a feed-forward head gives its logit, to which a small
feed-forward layer over the candidate's explicit match features (`match_features`: model codes,
numbers, stated values) adds its own. Training is cross-entropy
over each mention's candidates (`losses.candidate_cross_entropy`).

On disk (`save` / `load`), no pickle:
    backbone/                 the cross-encoder, `save_pretrained` (safetensors) + tokenizer files
    text_head.safetensors     head + missing vector
    text_stream.json          n_slots, hidden size, settings
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from ameli_ray.config import TextStreamSettings
from ameli_ray.disambiguation.match_features import n_match_features
from ameli_ray.disambiguation.statements import PairBatch
from ameli_ray.encoders.loading import resolve_model_ref, safetensors_only
from ameli_ray.errors import ConfigError, InputFormatError, ModelLoadError
from ameli_ray.precision import autocast
from ameli_ray.storage import ObjectStore

__all__ = ["TextStream", "find_hf_folder"]

FORMAT_VERSION = 2  # 2: the match-feature head
BACKBONE_DIR = "backbone"
HEAD_FILE = "text_head.safetensors"
META_FILE = "text_stream.json"
# Settings that change what the trained head reads: a saved stream refuses other values.
_SHAPE_FIELDS = ("pooling", "statements", "description_pair", "name_pair", "match_features")
_MATCH_HIDDEN = 32


def settings_as_saved(saved: dict) -> TextStreamSettings:
    """The settings a stream was saved with (its meta file, a model manifest): a field added since
    reads as the behaviour before it (a stream saved before the name slot has none)."""
    return TextStreamSettings(**{"name_pair": False, **saved})


def find_hf_folder(path: str) -> str:
    """The folder holding the HF model files: `path` itself, or the one subfolder that has a model
    `config.json` (sentence-transformers layouts may keep the transformer in e.g. `0_Transformer/`;
    `1_Pooling/config.json` is no model config, hence the `model_type` check). Hub names pass."""
    root = Path(path)
    if not root.is_dir() or _is_model_config(root / "config.json"):
        return path
    found = sorted(p.parent for p in root.glob("*/config.json") if _is_model_config(p))
    if len(found) == 1:
        return str(found[0])
    raise ModelLoadError(
        f"{path}: no HF model config.json here" + (f"; several candidates: {[str(p) for p in found]}" if found else "")
    )


def _is_model_config(path: Path) -> bool:
    try:
        return "model_type" in json.loads(path.read_text())
    except (OSError, ValueError):
        return False


def _encoder_layers(backbone: nn.Module) -> nn.ModuleList:
    """The stack of transformer layers: BERT/RoBERTa/ELECTRA/DeBERTa (`encoder.layer`),
    DistilBERT (`transformer.layer`), ModernBERT-style (`layers`)."""
    for path in ("encoder.layer", "transformer.layer", "encoder.layers", "layers"):
        module: Any = backbone
        for part in path.split("."):
            module = getattr(module, part, None)
        if isinstance(module, nn.ModuleList):
            return module
    raise ConfigError(
        f"frozen_layers: cannot find the transformer layers of {type(backbone).__name__} "
        "(looked for encoder.layer, transformer.layer, encoder.layers, layers); set frozen_layers: 0"
    )


def _centred(x: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """[B, C, ...] minus its mean over each mention's real candidates (`real` [B, C] bool)."""
    w = real.to(x.dtype).reshape(*real.shape, *([1] * (x.dim() - 2)))
    return x - (x * w).sum(dim=1, keepdim=True) / w.sum(dim=1, keepdim=True).clamp(min=1.0)


class TextStream(nn.Module):
    """Cross-encoder + slot head; `forward(tokens, index) -> [B, C]` logits."""

    def __init__(self, settings: TextStreamSettings, n_slots: int, store: ObjectStore | None = None,
                 backbone_path: str | None = None):
        super().__init__()
        from transformers import AutoModel, AutoTokenizer  # heavy: only when a stream is built

        if n_slots < 1:
            raise ConfigError("the text stream needs at least one slot (statements > 0, description_pair or name_pair)")
        self.settings = settings
        self.n_slots = n_slots
        path = backbone_path or find_hf_folder(resolve_model_ref(
            settings.model, store, allow_pickle=settings.allow_pickle, setting="disambiguation.text.allow_pickle"))
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(path)
            self.backbone = AutoModel.from_pretrained(path, **safetensors_only(settings.allow_pickle))
        except Exception as exc:  # transformers raises many types; the user needs the reference
            raise ModelLoadError(f"cannot load text-stream cross-encoder {settings.model!r} ({path}): {exc}") from exc
        h = int(self.backbone.config.hidden_size)
        self.hidden_size = h
        self.dropout = nn.Dropout(settings.dropout)
        # Stands in for a slot the candidate has no pair for (it lacks the attribute): learned, so
        # "missing" can count for or against a candidate.
        self.missing = nn.Parameter(torch.zeros(h))
        # Per slot, the head reads the pair's features and how they differ from the same slot of
        # the mention's other candidates (centred over the candidates, layer-normalised). Every
        # pair shares the review, which dominates its pooled features; the contrast is what tells
        # "capacity is 256GB" from "capacity is 128GB", and the cross-entropy is over candidates.
        self.contrast_norm = nn.LayerNorm(h)
        self.head = nn.Sequential(
            nn.Linear(2 * n_slots * h, h), nn.GELU(), nn.Dropout(settings.dropout), nn.Linear(h, 1)
        )
        # The match features, raw and centred over the mention's candidates (as the slots).
        self.n_match = n_match_features(settings.statements) if settings.match_features else 0
        self.match_head = (
            nn.Sequential(nn.Linear(2 * self.n_match, _MATCH_HIDDEN), nn.GELU(), nn.Linear(_MATCH_HIDDEN, 1))
            if self.n_match else None
        )
        self._freeze(settings.frozen_layers)

    def _freeze(self, k: int) -> None:
        # BERT's pooler is never used (we pool ourselves): frozen, it gets no gradient and DDP
        # does not complain about a parameter outside the graph.
        pooler = getattr(self.backbone, "pooler", None)
        if isinstance(pooler, nn.Module):
            pooler.requires_grad_(False)
        if k <= 0:
            return
        layers = _encoder_layers(self.backbone)
        if k > len(layers):
            raise ConfigError(f"frozen_layers={k}, but {type(self.backbone).__name__} has {len(layers)} layers")
        embeddings = getattr(self.backbone, "embeddings", None)
        if not isinstance(embeddings, nn.Module):
            raise ConfigError(f"frozen_layers: {type(self.backbone).__name__} has no `embeddings` module")
        # DeBERTa's relative-position embeddings (encoder.rel_embeddings) stay trainable: the
        # unfrozen layers read them too.
        embeddings.requires_grad_(False)
        for layer in layers[:k]:
            layer.requires_grad_(False)

    @property
    def device(self) -> torch.device:
        return self.missing.device

    # -- inputs ------------------------------------------------------------------------------
    def tokenize(self, premises: list[str], hypotheses: list[str]) -> dict[str, torch.Tensor]:
        """Pairs -> padded tensors (to the longest pair in the call, at most max_seq_length)."""
        if len(premises) != len(hypotheses):
            raise ValueError(f"{len(premises)} premises but {len(hypotheses)} hypotheses")
        if not premises:
            empty = torch.zeros((0, 0), dtype=torch.long)
            return {"input_ids": empty, "attention_mask": empty.clone()}
        enc = self.tokenizer(
            list(premises), list(hypotheses), truncation="longest_first",
            max_length=self.settings.max_seq_length, padding=True, return_tensors="pt",
        )
        return dict(enc)

    # -- model -------------------------------------------------------------------------------
    def encode_pairs(self, tokens: dict[str, torch.Tensor]) -> torch.Tensor:
        """[P, h] pooled (and, in training, dropped-out) features of the pairs."""
        mask = tokens["attention_mask"]
        if mask.shape[0] == 0:
            return self.missing.new_zeros((0, self.hidden_size))
        states = self.backbone(**tokens).last_hidden_state
        if self.settings.pooling == "cls":
            pooled = states[:, 0]
        else:
            m = mask.unsqueeze(-1).to(states.dtype)
            pooled = (states * m).sum(1) / m.sum(1).clamp(min=1.0)
        return self.dropout(pooled)

    def logits(self, features: torch.Tensor, index: torch.Tensor, match: torch.Tensor | None = None) -> torch.Tensor:
        """[P, h] pair features, [B, C, S] index, [B, C, F] match features -> [B, C] logits
        (padded candidates included)."""
        if index.dim() != 3 or index.shape[2] != self.n_slots:
            raise ValueError(f"index must be [B, C, {self.n_slots}], got {list(index.shape)}")
        if self.n_match and (match is None or tuple(match.shape) != (*index.shape[:2], self.n_match)):
            got = None if match is None else list(match.shape)
            raise ValueError(f"match features must be [B, C, {self.n_match}] (B, C of the index), got {got}")
        # Row 0 of the table is the missing vector, so index -1 -> 0 needs no branch, and the
        # missing vector is in every graph (DDP wants every trainable parameter used each step).
        table = torch.cat([self.missing.to(features.dtype).unsqueeze(0), features], dim=0)
        b, c, s = index.shape
        slots = table[(index + 1).reshape(-1)].reshape(b, c, s, self.hidden_size)
        real = (index >= 0).any(dim=2)  # [B, C]; padded candidates: all slots -1
        contrast = self.contrast_norm(_centred(slots, real))
        x = torch.cat([slots, contrast], dim=3).reshape(b, c, 2 * s * self.hidden_size)
        out = self.head(x).squeeze(-1)
        if self.match_head is not None:
            m = match.to(out.dtype)
            out = out + self.match_head(torch.cat([m, _centred(m, real)], dim=2)).squeeze(-1)
        return out

    def forward(self, tokens: dict[str, torch.Tensor], index: torch.Tensor, match: torch.Tensor | None = None) -> torch.Tensor:
        """`tokenize`d unique pairs + [B, C, S] index + [B, C, F] match features -> [B, C]
        logits. A padded candidate (all slots -1) gets a finite logit: the loss must mask it
        (candidate_cross_entropy does)."""
        return self.logits(self.encode_pairs(tokens), index, match)

    @torch.no_grad()
    def pair_features(self, premises: list[str], hypotheses: list[str]) -> torch.Tensor:
        """Inference: [P, h] pooled features of the pairs, in chunks of `batch_pairs` sorted by
        token length, so that a chunk pads to about its own length rather than the longest pair."""
        was_training = self.training
        self.eval()
        try:
            n = len(premises)
            features = torch.zeros((n, self.hidden_size), device=self.device)
            if n:
                enc = self.tokenizer(
                    list(premises), list(hypotheses), truncation="longest_first",
                    max_length=self.settings.max_seq_length,
                )
                order = sorted(range(n), key=lambda i: len(enc["input_ids"][i]))
                step = self.settings.batch_pairs
                for start in range(0, n, step):
                    rows = order[start : start + step]
                    chunk = self.tokenizer.pad({k: [enc[k][i] for i in rows] for k in enc.keys()}, return_tensors="pt")
                    tokens = {k: v.to(self.device) for k, v in chunk.items()}
                    with autocast(self.device, self.settings.mixed_precision):
                        pooled = self.encode_pairs(tokens)
                    features[torch.as_tensor(rows, device=self.device)] = pooled.float()
            return features
        finally:
            self.train(was_training)

    @torch.no_grad()
    def score(self, batch: PairBatch, features: torch.Tensor | None = None, match: np.ndarray | None = None) -> np.ndarray:
        """Inference: float32 [B, C] logits; padded candidates (candidate_mask False) get -inf.
        `features` ([n_pairs, h], e.g. from a cache) skips encoding the pairs; `match` [B, C, F]
        are the candidates' match features (`examples.stack_match`)."""
        was_training = self.training
        self.eval()
        try:
            if features is None:
                features = self.pair_features(batch.premises, batch.hypotheses)
            index = torch.as_tensor(batch.index, dtype=torch.long, device=self.device)
            if index.numel() == 0:
                return np.full(batch.candidate_mask.shape, -np.inf, np.float32)
            m = None if match is None else torch.as_tensor(match, dtype=torch.float32, device=self.device)
            out = self.logits(features.to(self.device), index, m).float().cpu().numpy()
        finally:
            self.train(was_training)
        out[~batch.candidate_mask] = -np.inf
        return out.astype(np.float32, copy=False)

    # -- files -------------------------------------------------------------------------------
    def head_state(self) -> dict[str, torch.Tensor]:
        """Every parameter/buffer outside the backbone (the head and the missing vector)."""
        return {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items() if not k.startswith("backbone.")}

    def save(self, directory: str | Path) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.backbone.save_pretrained(directory / BACKBONE_DIR, safe_serialization=True)
        self.tokenizer.save_pretrained(directory / BACKBONE_DIR)
        save_file(self.head_state(), str(directory / HEAD_FILE))
        meta = {
            "format_version": FORMAT_VERSION, "n_slots": self.n_slots, "hidden_size": self.hidden_size,
            "settings": self.settings.model_dump(),
        }
        (directory / META_FILE).write_text(json.dumps(meta, indent=2))
        return directory

    @classmethod
    def load(cls, directory: str | Path, settings: TextStreamSettings | None = None) -> "TextStream":
        """A saved stream; `settings` (default: the saved ones) may change batching, dropout and the
        sequence length, not what the head reads (pooling, slots)."""
        directory = Path(directory)
        try:
            meta = json.loads((directory / META_FILE).read_text())
        except (OSError, ValueError) as exc:
            raise InputFormatError(f"{directory / META_FILE}: not a saved text stream ({exc})") from None
        if meta.get("format_version") != FORMAT_VERSION:
            raise InputFormatError(f"{directory}: text stream format {meta.get('format_version')}; this reads {FORMAT_VERSION}")
        saved = settings_as_saved(meta["settings"])
        settings = settings or saved
        wrong = [f for f in _SHAPE_FIELDS if getattr(settings, f) != getattr(saved, f)]
        if wrong:
            raise ConfigError(
                f"{directory}: the text stream was trained with "
                + ", ".join(f"{f}={getattr(saved, f)!r}" for f in wrong)
                + "; the settings given differ"
            )
        model = cls(settings, int(meta["n_slots"]), backbone_path=str(directory / BACKBONE_DIR))
        missing, unexpected = model.load_state_dict(load_file(str(directory / HEAD_FILE)), strict=False)
        missing = [k for k in missing if not k.startswith("backbone.")]
        if missing or unexpected:
            raise InputFormatError(f"{directory / HEAD_FILE}: missing {missing}, unexpected {unexpected}")
        if model.hidden_size != int(meta["hidden_size"]):
            raise InputFormatError(f"{directory}: hidden size {model.hidden_size}, manifest says {meta['hidden_size']}")
        return model


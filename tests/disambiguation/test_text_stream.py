"""The text stream on the packaged MiniLM (offline): shapes, dedupe-invariance, freezing, a tiny
learning run, and the save/load round trips."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from ameli_ray.config import TextStreamSettings
from ameli_ray.disambiguation.statements import build_pair_batch, candidate_pairs, choose_keys
from ameli_ray.disambiguation.text_stream import TextStream, find_hf_folder
from ameli_ray.encoders.loading import resolve_model_ref
from ameli_ray.errors import ConfigError
from ameli_ray.schema import Entity

COLOURS = ("Red", "Blue", "Green", "Black")
CAPACITIES = ("128GB", "256GB")
PRODUCTS = [
    Entity(id=f"{c}-{g}", name=f"Zento - Pro {g} Memory Card - {c}", category="Memory Cards",
           description=f"The Zento Pro card stores {g}, in {c.lower()}.",
           attributes={"Brand": "Zento", "Color": c, "Storage Capacity": g})
    for c in COLOURS for g in CAPACITIES
]
BY_ID = {e.id: e for e in PRODUCTS}
# (review, gold, candidates): every mention's distractors share its colour or its capacity
MENTIONS = [
    ("Got the red one, 128GB.", "Red-128GB", ["Red-256GB", "Blue-128GB", "Red-128GB"]),
    ("My blue 256GB card works.", "Blue-256GB", ["Blue-256GB", "Blue-128GB", "Green-256GB"]),
    ("Green, 128GB, no complaints.", "Green-128GB", ["Green-256GB", "Green-128GB", "Black-128GB"]),
    ("The black 256GB is great.", "Black-256GB", ["Red-256GB", "Black-128GB", "Black-256GB"]),
    ("Bought 256GB in red.", "Red-256GB", ["Red-256GB", "Red-128GB", "Green-256GB"]),
    ("Blue, 128GB: as needed.", "Blue-128GB", ["Black-128GB", "Blue-256GB", "Blue-128GB"]),
]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One torch thread for this module: on a busy 2-core box, OpenMP's spin-waiting makes two
    threads ~10x slower than one (measured: the toy training 47 s vs 4 s); restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _settings(**kw) -> TextStreamSettings:
    # the cross-encoder's own mechanics (three slots: two statements and the description); the
    # match-feature head has its tests below
    return TextStreamSettings(**{"max_seq_length": 32, "statements": 2, "description_pair": True, "name_pair": False,
                                 "match_features": False, **kw})


def _items(settings: TextStreamSettings):
    items, gold = [], []
    for review, g, ids in MENTIONS:
        cands = [BY_ID[i] for i in ids]
        keys = choose_keys(["color", "storage capacity"], cands, settings.statements)
        items.append([candidate_pairs(review, "the card", e, keys, settings.description_pair) for e in cands])
        gold.append(ids.index(g))
    return items, torch.as_tensor(gold)


@pytest.fixture(scope="module")
def stream() -> TextStream:
    torch.manual_seed(0)
    return TextStream(_settings(), n_slots=3).eval()


@pytest.fixture(scope="module")
def frozen() -> TextStream:
    torch.manual_seed(0)
    return TextStream(_settings(frozen_layers=4, dropout=0.0), n_slots=3)


def test_packaged_minilm_loads_offline_and_gives_candidate_logits(stream):
    batch = build_pair_batch(_items(stream.settings)[0][:4])
    tokens = stream.tokenize(batch.premises, batch.hypotheses)
    assert tokens["input_ids"].shape[0] == batch.n_pairs and tokens["input_ids"].shape[1] <= 32
    with torch.no_grad():
        logits = stream(tokens, torch.as_tensor(batch.index))
    assert logits.shape == (4, 3) and torch.isfinite(logits).all()
    assert stream.hidden_size == 384


def test_dedupe_scores_equal_pair_by_pair(stream):
    items, _ = _items(stream.settings)
    items = items + [items[0][:2]]  # a mention with fewer candidates: padding
    batch = build_pair_batch(items)
    assert batch.n_pairs < batch.n_slots_filled  # brand statements and shared values collapse
    scores = stream.score(batch)
    assert scores.shape == (7, 3) and np.isneginf(scores[6, 2]) and np.isfinite(scores[:6]).all()

    # no dedupe, no chunking, no sorting: every slot of every candidate encoded on its own
    feats, index = [], torch.full(batch.index.shape, -1, dtype=torch.long)
    with torch.no_grad():
        for b, cands in enumerate(items):
            for c, slots in enumerate(cands):
                for s, pair in enumerate(slots):
                    if pair is not None:
                        index[b, c, s] = len(feats)
                        feats.append(stream.encode_pairs(stream.tokenize([pair[0]], [pair[1]]))[0])
        ref = stream.logits(torch.stack(feats), index).numpy()
    np.testing.assert_allclose(scores[batch.candidate_mask], ref[batch.candidate_mask], atol=1e-5)

    # small chunks (sorted by length, padded per chunk) change nothing either
    small = TextStreamSettings(**{**stream.settings.model_dump(), "batch_pairs": 3})
    stream.settings, saved = small, stream.settings
    try:
        np.testing.assert_allclose(stream.score(batch), scores, atol=1e-5)
    finally:
        stream.settings = saved


def test_gradients_reach_head_and_unfrozen_layers_only(frozen):
    items, _ = _items(frozen.settings)
    items[0][0][0] = None  # a missing slot: the missing vector gets gradient
    batch = build_pair_batch(items)
    frozen.train()
    frozen.zero_grad(set_to_none=True)
    frozen(frozen.tokenize(batch.premises, batch.hypotheses), torch.as_tensor(batch.index)).sum().backward()
    layers = frozen.backbone.encoder.layer
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in frozen.head.parameters())
    assert frozen.missing.grad is not None and frozen.missing.grad.abs().sum() > 0
    for layer in layers[4:]:
        assert all(p.requires_grad and p.grad is not None for p in layer.parameters())
    for module in [frozen.backbone.embeddings, *layers[:4], frozen.backbone.pooler]:
        assert all(not p.requires_grad and p.grad is None for p in module.parameters())
    frozen.zero_grad(set_to_none=True)
    with pytest.raises(ConfigError, match="has 6 layers"):
        frozen._freeze(7)


def _loss(logits: torch.Tensor, gold: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    try:
        from ameli_ray.disambiguation.losses import candidate_cross_entropy
    except ImportError:  # written by another engineer; the same thing inline
        return torch.nn.functional.cross_entropy(logits.masked_fill(~mask, float("-inf")), gold)
    return candidate_cross_entropy(logits, gold, mask)


def test_toy_learning_loss_falls_and_accuracy_rises():
    # Cheap on 2 CPU cores: two slots (colour, capacity), 32 tokens, and MiniLM cut to its lowest
    # two layers with the first frozen (the full six cost three times as much per step).
    torch.manual_seed(0)
    model = TextStream(_settings(statements=2, description_pair=False, frozen_layers=1, dropout=0.0), n_slots=2)
    model.backbone.encoder.layer = model.backbone.encoder.layer[:2]
    items, gold = _items(model.settings)
    batch = build_pair_batch(items)
    tokens = model.tokenize(batch.premises, batch.hypotheses)
    index, mask = torch.as_tensor(batch.index), torch.as_tensor(batch.candidate_mask)

    def accuracy() -> float:
        return float((torch.as_tensor(model.score(batch)).argmax(1) == gold).float().mean())

    acc_before = accuracy()
    backbone = [p for n, p in model.named_parameters() if p.requires_grad and n.startswith("backbone.")]
    head = [p for n, p in model.named_parameters() if p.requires_grad and not n.startswith("backbone.")]
    assert backbone and head
    opt = torch.optim.AdamW([{"params": backbone, "lr": 2e-4}, {"params": head, "lr": 1e-3}], weight_decay=0.0)
    model.train()
    losses = []
    for _ in range(40):
        loss = _loss(model(tokens, index), gold, mask)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    acc_after = accuracy()
    # the backbone's own dropout makes single steps noisy: compare the mean of the last five
    assert np.mean(losses[-5:]) < 0.5 * losses[0], losses
    assert acc_after == 1.0 and acc_after > acc_before, (acc_before, acc_after)


def test_save_load_round_trips(stream, tmp_path):
    from safetensors.torch import load_model, save_model

    batch = build_pair_batch(_items(stream.settings)[0])
    with torch.no_grad():  # make the backbone differ from the packaged one: it must be saved
        stream.backbone.encoder.layer[5].output.dense.bias.add_(0.05)
    try:
        scores = stream.score(batch)
        stream.save(tmp_path / "text")
        names = {p.relative_to(tmp_path / "text").as_posix() for p in (tmp_path / "text").rglob("*") if p.is_file()}
        assert {"text_stream.json", "text_head.safetensors", "backbone/model.safetensors", "backbone/config.json"} <= names
        assert not any(n.endswith((".bin", ".pt", ".pkl", ".pth")) for n in names)  # no pickle
        loaded = TextStream.load(tmp_path / "text", stream.settings)
        np.testing.assert_array_equal(loaded.score(batch), scores)
        np.testing.assert_array_equal(TextStream.load(tmp_path / "text").score(batch), scores)
        with pytest.raises(ConfigError, match="pooling"):
            TextStream.load(tmp_path / "text", _settings(pooling="cls"))
        with pytest.raises(ConfigError, match="name_pair=False"):
            TextStream.load(tmp_path / "text", _settings(name_pair=True))  # one slot more than the head reads
        # a stream saved before the name slot existed has none
        meta_path = tmp_path / "text" / "text_stream.json"
        meta = json.loads(meta_path.read_text())
        del meta["settings"]["name_pair"]
        meta_path.write_text(json.dumps(meta))
        assert TextStream.load(tmp_path / "text").settings.name_pair is False

        # what training checkpoints do: the whole state_dict through safetensors' save_model
        save_model(stream, str(tmp_path / "model.safetensors"))
        torch.manual_seed(123)
        fresh = TextStream(_settings(), n_slots=3)
        assert not np.array_equal(fresh.score(batch), scores)
        load_model(fresh, str(tmp_path / "model.safetensors"))
        np.testing.assert_array_equal(fresh.score(batch), scores)
    finally:
        with torch.no_grad():
            stream.backbone.encoder.layer[5].output.dense.bias.sub_(0.05)


def test_find_hf_folder_in_a_sentence_transformers_layout(tmp_path):
    packaged = resolve_model_ref("packaged:all-MiniLM-L6-v2")
    assert find_hf_folder(packaged) == packaged  # files at the top (its 1_Pooling/config.json is no model)
    inner = tmp_path / "0_Transformer"
    inner.mkdir()
    for name in ("config.json", "tokenizer.json", "vocab.txt", "tokenizer_config.json"):
        shutil.copy(f"{packaged}/{name}", inner / name)
    (tmp_path / "1_Pooling").mkdir()
    (tmp_path / "1_Pooling" / "config.json").write_text('{"pooling_mode_mean_tokens": true}')
    assert find_hf_folder(str(tmp_path)) == str(inner)
    assert find_hf_folder("cross-encoder/nli-deberta-v3-base") == "cross-encoder/nli-deberta-v3-base"


def test_match_head_learns_what_the_codes_say():
    """With the match features on, the stream separates products the cross-encoder's review
    pairs cannot (the codes differ only in the text the features compare), and gradient reaches
    the match head; calling it without the features is an error, not a silent zero."""
    from ameli_ray.disambiguation.examples import collate_text, n_slots, text_example

    torch.manual_seed(0)
    settings = _settings(statements=1, description_pair=False, match_features=True, frozen_layers=1, dropout=0.0)
    model = TextStream(settings, n_slots=n_slots(settings))
    model.backbone.encoder.layer = model.backbone.encoder.layer[:2]
    products = [Entity(id=str(i), name=f"Kelvo Kettle - KV{100 + i}X", attributes={"Brand": "Kelvo"}) for i in range(4)]
    rows = [text_example(_mention(f"Works well, my KV{100 + g}X boils fast."), [], products, g, settings) for g in range(4)]
    premises, hypotheses, index, mask, gold, match = collate_text(rows, n_slots(settings))
    tokens = model.tokenize(premises, hypotheses)
    assert match.shape == (4, 4, model.n_match)
    with pytest.raises(ValueError, match="match features"):
        model(tokens, index)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    model.train()
    for step in range(30):
        loss = _loss(model(tokens, index, match), gold, mask)
        opt.zero_grad()
        loss.backward()
        if step == 0:
            # (the last bias shifts every candidate alike: its cross-entropy gradient is zero)
            assert all(p.grad is not None for p in model.match_head.parameters())
            assert model.match_head[0].weight.grad.abs().sum() > 0 and model.match_head[2].weight.grad.abs().sum() > 0
        opt.step()
    with torch.no_grad():
        model.eval()
        logits = model(tokens, index, match)
    assert (logits.argmax(1) == gold).all(), logits


def test_save_load_keeps_the_match_head(tmp_path):
    from ameli_ray.disambiguation.examples import mention_inputs, n_slots, stack_match

    torch.manual_seed(0)
    settings = _settings(match_features=True)
    model = TextStream(settings, n_slots=n_slots(settings)).eval()
    cands = PRODUCTS[:3]
    inputs = mention_inputs(_mention("Got the red one, 128GB."), ["color"], cands, settings)
    batch = build_pair_batch([inputs.pairs])
    match = stack_match([inputs.match], 3)
    scores = model.score(batch, match=match)
    model.save(tmp_path / "text")
    loaded = TextStream.load(tmp_path / "text")
    assert loaded.n_match == model.n_match > 0
    np.testing.assert_array_equal(loaded.score(batch, match=match), scores)
    with pytest.raises(ConfigError, match="match_features"):
        TextStream.load(tmp_path / "text", _settings(match_features=False))


def _mention(text: str):
    from ameli_ray.schema import Mention

    return Mention(id="m", text=text, surface="")


def test_bf16_scoring_stays_close_to_fp32_and_auto_is_fp32_on_a_cpu(stream):
    batch = build_pair_batch(_items(stream.settings)[0])
    saved = stream.settings
    try:
        scores = {}
        for mode in ("no", "auto", "bf16"):
            stream.settings = saved.model_copy(update={"mixed_precision": mode})
            scores[mode] = stream.score(batch)
    finally:
        stream.settings = saved
    np.testing.assert_array_equal(scores["auto"], scores["no"])  # auto = fp32 on a CPU
    assert not np.array_equal(scores["bf16"], scores["no"])  # the autocast did run
    np.testing.assert_allclose(scores["bf16"], scores["no"], atol=0.1)
    assert (scores["bf16"].argmax(1) == scores["no"].argmax(1)).all()

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load, save, save_file

from ameli_ray.config import ImageStreamSettings
from ameli_ray.disambiguation.image_stream import ADAPTER_FILE, ImageAdapter, ImageStream
from ameli_ray.disambiguation.losses import contrastive_loss
from ameli_ray.errors import ConfigError, InputFormatError


def _unit(n: int, d: int, seed: int) -> torch.Tensor:
    return F.normalize(torch.randn(n, d, generator=torch.Generator().manual_seed(seed)), dim=-1)


def test_adapter_output_is_unit_norm_and_ratio_zero_is_the_identity():
    x = _unit(7, 16, 0)
    torch.manual_seed(0)
    out = ImageAdapter(16, ImageStreamSettings())(x)
    assert torch.allclose(out.norm(dim=-1), torch.ones(7), atol=1e-6)
    assert not torch.allclose(out, x, atol=1e-4)  # the MLP does contribute at ratio 0.2
    raw = 3.0 * x  # not normalised: ratio 0 must still normalise it
    assert torch.allclose(ImageAdapter(16, ImageStreamSettings(residual_ratio=0))(raw), x, atol=1e-6)
    assert ImageAdapter(16, ImageStreamSettings(reduction=4)).mlp[0].out_features == 4


def test_initial_logit_scale_and_clamp():
    stream = ImageStream(8, ImageStreamSettings(init_temperature=0.07))
    assert stream.scale().item() == pytest.approx(1 / 0.07, rel=1e-5)
    with torch.no_grad():
        stream.logit_scale.fill_(10.0)
    assert stream.scale().item() == pytest.approx(100.0, rel=1e-5)


def test_candidate_scores_are_the_max_over_image_pairs():
    torch.manual_seed(1)
    stream = ImageStream(16)
    photos, images = _unit(3, 16, 1), _unit(6, 16, 2)
    owner = torch.tensor([0, 0, 2, 2, 2, 3])  # candidates 1 and 4 own no image
    got = stream.candidate_scores(photos, images, owner, 5)
    p, e = stream.encode(photos).detach(), stream.encode(images).detach()
    for c in range(5):
        pairs = [float(p[i] @ e[j]) for i in range(3) for j in range(6) if owner[j] == c]
        if pairs:
            assert got[c].item() == pytest.approx(max(pairs), abs=1e-6)
        else:
            assert math.isnan(got[c].item())
    assert torch.isnan(stream.candidate_scores(photos[:0], images, owner, 5)).all()
    numpy = stream.score_candidates(photos.numpy(), images.numpy(), owner.numpy(), 5)
    assert numpy.dtype == np.float32 and stream.training  # mode restored
    np.testing.assert_allclose(numpy, got.detach().numpy(), atol=1e-6)
    assert np.isnan(stream.score_candidates(np.zeros((0, 16)), images.numpy(), owner.numpy(), 5)).all()


def test_state_dict_round_trip_through_safetensors():
    torch.manual_seed(2)
    settings = ImageStreamSettings(reduction=2, residual_ratio=0.3)
    stream = ImageStream(24, settings)
    with torch.no_grad():
        stream.logit_scale.fill_(3.0)
    state = load(save(stream.state_dict()))
    # a DDP model's state dict carries a `module.` prefix: accepted too
    for restored in (ImageStream.from_state_dict(state, settings),
                     ImageStream.from_state_dict({f"module.{k}": v for k, v in state.items()}, settings)):
        assert restored.dim == 24
        photos, images, owner = _unit(2, 24, 3).numpy(), _unit(4, 24, 4).numpy(), np.array([0, 1, 1, 2])
        np.testing.assert_array_equal(restored.score_candidates(photos, images, owner, 3),
                                      stream.score_candidates(photos, images, owner, 3))
        assert restored.logit_scale.item() == 3.0
    with pytest.raises(RuntimeError):  # a different bottleneck does not load silently
        ImageStream.from_state_dict(state, ImageStreamSettings(reduction=4))


def _trained_looking(settings: ImageStreamSettings, dim: int = 24) -> ImageStream:
    torch.manual_seed(5)
    stream = ImageStream(dim, settings)
    with torch.no_grad():
        stream.logit_scale.fill_(3.0)
    return stream


def _same_outputs(a: ImageStream, b: ImageStream) -> None:
    photos, images, owner = _unit(2, a.dim, 3).numpy(), _unit(4, a.dim, 4).numpy(), np.array([0, 1, 1, 2])
    np.testing.assert_array_equal(a.score_candidates(photos, images, owner, 3), b.score_candidates(photos, images, owner, 3))
    assert a.logit_scale.item() == b.logit_scale.item()


def test_save_load_round_trip(tmp_path):
    settings = ImageStreamSettings(reduction=2, residual_ratio=0.3)
    stream = _trained_looking(settings)
    path = stream.save(tmp_path / "model")
    # one safetensors file, the name the model layout has always used (no pickle anywhere)
    assert path == tmp_path / "model" / ADAPTER_FILE == tmp_path / "model" / "image_adapter.safetensors"
    assert [p.name for p in (tmp_path / "model").iterdir()] == [ADAPTER_FILE]
    for loaded in (ImageStream.load(tmp_path / "model", settings), ImageStream.load(tmp_path / "model")):
        assert loaded.dim == 24 and loaded.settings == settings  # the saved settings by default
        _same_outputs(loaded, stream)
        assert loaded.adapter.ratio == 0.3  # not a weight: it comes from the settings


def test_load_refuses_settings_that_change_what_the_weights_compute(tmp_path):
    _trained_looking(ImageStreamSettings(reduction=2, residual_ratio=0.3)).save(tmp_path)
    with pytest.raises(ConfigError, match="residual_ratio=0.3"):
        ImageStream.load(tmp_path, ImageStreamSettings(reduction=2, residual_ratio=0.2))
    with pytest.raises(ConfigError, match="reduction=2"):
        ImageStream.load(tmp_path, ImageStreamSettings(reduction=4, residual_ratio=0.3))
    # the initial temperature is no such setting: the logit scale is a weight
    loaded = ImageStream.load(tmp_path, ImageStreamSettings(reduction=2, residual_ratio=0.3, init_temperature=0.5))
    assert loaded.logit_scale.item() == 3.0


def test_load_reads_files_written_before_settings_were_saved(tmp_path):
    settings = ImageStreamSettings(reduction=2, residual_ratio=0.3)
    stream = _trained_looking(settings)
    # what write_model wrote before ImageStream.save: the bare state dict, no metadata
    save_file({k: v.detach().contiguous() for k, v in stream.state_dict().items()}, str(tmp_path / ADAPTER_FILE))
    _same_outputs(ImageStream.load(tmp_path, settings), stream)
    with pytest.raises(ConfigError, match="give those of training"):
        ImageStream.load(tmp_path)


def test_load_refuses_a_missing_or_corrupted_file_clearly(tmp_path):
    with pytest.raises(InputFormatError, match="no saved image stream"):
        ImageStream.load(tmp_path, ImageStreamSettings())
    path = _trained_looking(ImageStreamSettings()).save(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # an interrupted copy
    with pytest.raises(InputFormatError, match="not a readable safetensors file"):
        ImageStream.load(tmp_path, ImageStreamSettings())
    path.write_bytes(b"\x80\x04not safetensors at all")  # e.g. a pickle
    with pytest.raises(InputFormatError, match="not a readable safetensors file"):
        ImageStream.load(tmp_path, ImageStreamSettings())
    save_file({"something.else": torch.zeros(3)}, str(path))  # readable, but not an image stream
    with pytest.raises(InputFormatError, match="not the weights of an image stream"):
        ImageStream.load(tmp_path, ImageStreamSettings())


def _confusable_pairs(n: int, rotation: torch.Tensor, gen: torch.Generator, signal: int = 8):
    """Review photo and product image share `signal` identity coordinates (the photo's noisy) and
    differ in as many independent nuisance coordinates; a fixed random rotation mixes the two
    subspaces, so raw cosines are dominated by nuisance. The adapter must learn to project it away."""
    d = rotation.shape[0]
    ident = torch.randn(n, signal, generator=gen)
    product = torch.cat([ident, torch.randn(n, d - signal, generator=gen)], 1) @ rotation.T
    photo = torch.cat([ident + 0.3 * torch.randn(n, signal, generator=gen), torch.randn(n, d - signal, generator=gen)], 1)
    return F.normalize(photo @ rotation.T, dim=-1), F.normalize(product, dim=-1)


@pytest.fixture
def one_thread():
    # tiny matrices: threads only add contention on a busy 2-core machine
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_training_the_adapter_contrastively_beats_the_untrained_one(one_thread):
    d = 32
    gen = torch.Generator().manual_seed(0)
    rotation = torch.linalg.qr(torch.randn(d, d, generator=gen))[0]
    train_photos, train_products = _confusable_pairs(512, rotation, gen)
    test_photos, test_products = _confusable_pairs(200, rotation, gen)  # held-out products

    def top1(model: ImageStream) -> float:
        with torch.no_grad():
            sims = model.encode(test_photos) @ model.encode(test_products).T
        return sims.argmax(1).eq(torch.arange(200)).float().mean().item()

    torch.manual_seed(0)
    model = ImageStream(d)
    before = top1(model)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.0)
    for _ in range(300):
        idx = torch.randint(0, 512, (64,), generator=gen)  # with replacement: repeated groups get masked
        z = model(torch.cat([train_photos[idx], train_products[idx]]))
        loss = contrastive_loss(z[:64], z[64:], idx, model.scale(), gather=False)
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = top1(model)
    assert before < 0.25
    print(f'top-1 on held-out pairs: untrained {before:.3f}, trained {after:.3f}')
    assert after > before + 0.2, (before, after)

"""The device-resident batch pipeline: same augmentation as torchvision, seeded, resumable."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torchvision.transforms import v2

from distill.data import BatchSpec, DeviceLoader, ImageSet, Normalizer
from distill.data.loader import crop_flip_indices, random_crop_flip

MEAN, STD = (0.5071, 0.4867, 0.4408), (0.2675, 0.2565, 0.2761)


def images(n: int = 10, seed: int = 0) -> ImageSet:
    g = torch.Generator().manual_seed(seed)
    return ImageSet(torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g), torch.arange(n) % 3)


def test_crop_flip_equals_padding_then_slicing() -> None:
    """Each output image is a 32x32 window of the zero-padded input, mirrored when flipped."""
    batch = images(16).images
    out = random_crop_flip(batch, torch.Generator().manual_seed(5))
    rows, cols = crop_flip_indices(16, 32, 32, 4, torch.Generator().manual_seed(5))
    padded = F.pad(batch, (4, 4, 4, 4))
    flips = 0
    for i in range(16):
        top, left = rows[i, 0].item(), cols[i].min().item()
        window = padded[i, :, top:top + 32, left:left + 32]
        flipped = bool(cols[i, 0] > cols[i, -1])
        flips += flipped
        assert torch.equal(out[i], window.flip(2) if flipped else window)
    assert 0 < flips < 16


def test_crop_offsets_and_flips_are_uniform() -> None:
    rows, cols = crop_flip_indices(20000, 32, 32, 4, torch.Generator().manual_seed(0))
    offsets = rows[:, 0].bincount(minlength=9).float() / 20000
    assert torch.allclose(offsets, torch.full((9,), 1 / 9), atol=0.01)
    assert abs((cols[:, 0] > cols[:, -1]).float().mean().item() - 0.5) < 0.02


def test_normalisation_matches_torchvision() -> None:
    batch = images(4).images
    reference = v2.Compose([v2.ToDtype(torch.float32, scale=True), v2.Normalize(MEAN, STD)])(batch)
    torch.testing.assert_close(Normalizer(MEAN, STD, "cpu")(batch), reference, atol=1e-5, rtol=0)
    last = Normalizer(MEAN, STD, "cpu")(batch, channels_last=True)
    assert last.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(last, reference, atol=1e-5, rtol=0)


def test_train_loader_shuffles_drops_last_and_is_seeded() -> None:
    data = images(10)
    loader = DeviceLoader(data, BatchSpec(MEAN, STD, batch_size=4, seed=1))
    assert len(loader) == 2
    first = [(x.clone(), y.clone()) for x, y in loader]
    assert [len(y) for _, y in first] == [4, 4]
    again = [(x, y) for x, y in DeviceLoader(data, BatchSpec(MEAN, STD, batch_size=4, seed=1))]
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(first, again))
    second_epoch = [y for _, y in loader]
    assert not all(torch.equal(a[1], b) for a, b in zip(first, second_epoch))


def test_small_train_set_still_yields_a_batch() -> None:
    assert len(DeviceLoader(images(3), BatchSpec(MEAN, STD, batch_size=64))) == 1


def test_eval_loader_keeps_order_and_every_image() -> None:
    data = images(10)
    loader = DeviceLoader(data, BatchSpec(MEAN, STD, batch_size=4, train=False))
    batches = list(loader)
    assert [len(y) for _, y in batches] == [4, 4, 2]
    xs = torch.cat([x for x, _ in batches])
    torch.testing.assert_close(xs, Normalizer(MEAN, STD, "cpu")(data.images))


def test_state_dict_resumes_the_same_batches() -> None:
    data = images(12)
    loader = DeviceLoader(data, BatchSpec(MEAN, STD, batch_size=4, seed=7))
    list(loader)
    state = loader.state_dict()
    expected = [x for x, _ in loader]
    fresh = DeviceLoader(data, BatchSpec(MEAN, STD, batch_size=4, seed=0))
    fresh.load_state_dict(state)
    resumed = [x for x, _ in fresh]
    assert len(expected) == len(resumed) == 3
    assert all(torch.equal(a, b) for a, b in zip(expected, resumed))


def test_indices_name_each_sample_and_cost_no_random_draws() -> None:
    """With indices=True each batch carries its samples' positions in the set; the batches stay the same."""
    data = images(10)
    plain = list(DeviceLoader(data, BatchSpec(MEAN, STD, batch_size=4, seed=3)))
    indexed = list(DeviceLoader(data, BatchSpec(MEAN, STD, batch_size=4, seed=3, indices=True)))
    for (x, y), (xi, yi, idx) in zip(plain, indexed):
        assert torch.equal(x, xi) and torch.equal(y, yi) and torch.equal(data.labels[idx], yi)
    assert len({int(i) for *_, idx in indexed for i in idx}) == 8, "no sample twice in an epoch"
    spec = BatchSpec(MEAN, STD, batch_size=4, train=False, indices=True)
    walked = torch.cat([idx for *_, idx in DeviceLoader(data, spec)])
    assert walked.tolist() == list(range(10))

"""The trainer's 2x2 max-pooling (models/maxpool.py): torch's numbers to the bit, on the real models."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fedmr_ray.config import TrainConfig
from fedmr_ray.data import FederatedDataset
from fedmr_ray.models import ModelSpec, initial_state
from fedmr_ray.models.maxpool import FAST_MIN_ELEMENTS, FastMaxPool2d, fast_pool_is_exact, matches_torch, use_fast_pools
from fedmr_ray.train import ClientTrainer, TrainJob


def same(x: torch.Tensor) -> bool:
    """max_pool2x2 gives F.max_pool2d's output bits and input gradient on x."""
    return matches_torch(x, torch.Generator().manual_seed(1))


def test_the_check_the_trainer_relies_on_passes_here():
    assert fast_pool_is_exact()


@pytest.mark.parametrize("shape", [(50, 6, 24, 24), (7, 16, 24, 24), (4, 64, 32, 32), (20, 3, 10, 10)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_same_outputs_and_gradients_as_torch_on_activations_full_of_ties(shape, dtype):
    generator = torch.Generator().manual_seed(0)
    conv = torch.randn(shape, generator=generator, dtype=dtype)
    # ReLU outputs: a third of the windows all zeros; and equal values in many others
    for x in (F.relu(conv), torch.round(conv * 2), torch.where(conv.abs() < 0.3, -0.0, conv)):
        assert same(x.contiguous())


def test_windows_with_a_nan_or_an_infinity_give_torchs_result():
    x = torch.relu(torch.randn(50, 6, 24, 24))
    for value in (float("nan"), float("inf"), float("-inf")):
        y = x.clone()
        y[3, 2, 5, 6] = value
        y[3, 2, 4, 7] = value
        assert same(y)


def test_small_odd_and_strided_inputs_take_torchs_kernel():
    assert FAST_MIN_ELEMENTS > 10 * 6 * 24 * 24
    for x in (torch.randn(10, 6, 24, 24), torch.randn(50, 6, 25, 23), torch.randn(50, 6, 48, 24)[:, :, ::2]):
        assert same(x)


def test_the_models_2x2_pools_are_swapped_and_no_other():
    spec = {name: ModelSpec(name, 10, shape) for name, shape in
            [("cnn", (1, 28, 28)), ("cnn-femnist", (1, 28, 28)), ("cnn-mnist", (1, 28, 28)), ("vgg16", (3, 32, 32)),
             ("resnet20", (1, 28, 28)), ("mlp", (60,))]}
    counts = {name: use_fast_pools(s.build()) for name, s in spec.items()}
    assert counts == {"cnn": 1, "cnn-femnist": 1, "cnn-mnist": 1, "vgg16": 5, "resnet20": 0, "mlp": 0}
    vgg_mnist = ModelSpec("vgg16", 10, (1, 28, 28)).build()
    assert use_fast_pools(vgg_mnist) == 1  # its last pool; the two of stride 1 stay torch's
    assert [type(m) for m in vgg_mnist.features if isinstance(m, nn.MaxPool2d)] == [nn.MaxPool2d, nn.MaxPool2d,
                                                                                    FastMaxPool2d]
    model = spec["cnn"].build()
    use_fast_pools(model)
    assert isinstance(model.pool, FastMaxPool2d) and not isinstance(model.conv1, FastMaxPool2d)
    assert list(model.state_dict()) == list(spec["cnn"].build().state_dict())
    resnet = spec["resnet20"].build()
    use_fast_pools(resnet)
    assert type(resnet.stem_pool) is nn.MaxPool2d  # 3x3, stride 1: torch's


@pytest.mark.parametrize("model", ["cnn", "cnn-femnist"])
def test_a_trainer_with_fast_pools_trains_clients_to_the_bit_as_with_torchs(model):
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    n = 240
    x = ((rng.random((n, 1, 28, 28)) > 0.6) * rng.random((n, 1, 28, 28)) * 2 - 1).astype(np.float32)  # flat background
    y = rng.integers(0, 10, n)
    data = FederatedDataset("images", x, y, x[:40], y[:40], np.array([0, 120, 170, 240]), 10)
    spec = ModelSpec(model, 10, (1, 28, 28))
    config = TrainConfig(local_epochs=2, batch_size=50, momentum=0.5)
    fast, plain = ClientTrainer(spec, data, config, seed=4), ClientTrainer(spec, data, config, seed=4)
    assert fast.fast_pools == 1 and isinstance(fast.model.pool, FastMaxPool2d)
    plain.model.pool = nn.MaxPool2d(2)
    start = initial_state(spec, 4)
    for client in range(3):
        job = TrainJob(0, client, 2)
        a, b = fast.train(job, start), plain.train(job, start)
        assert a.result == b.result
        assert all(np.array_equal(u, v) for u, v in zip(a.entries, b.entries))
    assert fast.evaluate(a.entries) == plain.evaluate(a.entries)

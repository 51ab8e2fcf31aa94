"""The paper's models: parameter counts, structure the reference fixes, logits out, inputs each
model takes, custom factories, and `fedmr-ray models`."""

from __future__ import annotations

import sys
import textwrap

import pytest
import torch
from torch import nn

from fedmr_ray.cli.main import main
from fedmr_ray.config import ConfigError, DataConfig, SimulationConfig
from fedmr_ray.data.catalog import DATASETS
from fedmr_ray.models import ModelSpec, check_model, entry_names, initial_state, parameter_count
from fedmr_ray.models.info import model_info
from fedmr_ray.setup import check

COUNTS = [
    ("mlp", "synthetic", 16_714),  # 60-128-64-10, unchanged
    ("cnn", "cifar10", 62_006),  # conv 3->6, conv 6->16, FC 400-120-84-10
    ("cnn", "fmnist", 44_426),  # the 1-channel 28x28 variant: FC 256-120-84-10
    ("cnn-femnist", "femnist", 160_510),  # conv 1->16, conv 16->32, FC 512-256-62
    ("resnet20", "cifar10", 218_970),  # the reference's 219,482 less its unused BatchNorm2d(256) (512)
    ("resnet20", "cifar100", 242_100),
    ("vgg16", "cifar10", 33_646_666),
]


@pytest.mark.parametrize(("model", "dataset", "count"), COUNTS)
def test_parameter_counts(model, dataset, count):
    assert check_model(model, DATASETS[dataset]) == count


@pytest.mark.parametrize(("model", "dataset"), [(m, d) for m, d, _ in COUNTS])
def test_forward_gives_logits_and_the_classifier_is_the_last_linear_layer(model, dataset):
    spec = DATASETS[dataset]
    built = ModelSpec(model, spec.num_classes, spec.input_shape).build().eval()
    with torch.no_grad():
        out = built(torch.randn(3, *spec.input_shape))
    assert isinstance(out, torch.Tensor) and out.shape == (3, spec.num_classes)
    info = model_info(ModelSpec(model, spec.num_classes, spec.input_shape))
    assert built.get_submodule(info.head).out_features == spec.num_classes


def test_resnet20_is_the_reference_structure():
    model = ModelSpec("resnet20", 10, (3, 32, 32)).build()
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert convs[0].in_channels == 3 and convs[0].out_channels == 16 and convs[0].bias is None
    assert not isinstance(model.layer1[0].bn1, nn.Identity) and model.layer1[0].shortcut.kernel_size == (1, 1)
    stages = [model.layer1, model.layer2, model.layer3]
    assert [len(s) for s in stages] == [2, 2, 2]
    assert [s[0].conv3.out_channels for s in stages] == [64, 128, 256]  # widths 16/32/64, expansion 4
    assert [s[0].conv2.stride for s in stages] == [(1, 1), (2, 2), (2, 2)]
    shortcuts = [b.shortcut for s in stages for b in s]
    assert [s is not None for s in shortcuts] == [True, False, True, False, True, False]
    assert all(isinstance(s, nn.Conv2d) and s.bias is None for s in shortcuts if s is not None)  # no BN on them
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(bns) == 18 and all(torch.all(b.weight == 0.5) and torch.all(b.bias == 0) for b in bns)
    assert model.fc.in_features == 256
    assert all(torch.isfinite(p).all() for p in model.parameters())
    # 28x28: the reference's MNIST variant pools after the stem and averages over 7x7
    small = ModelSpec("resnet20", 62, (1, 28, 28)).build()
    assert isinstance(small.stem_pool, nn.MaxPool2d) and small.avgpool.kernel_size == 7


def test_vgg16_has_13_conv_bn_relu_and_a_dropout_classifier():
    model = ModelSpec("vgg16", 10, (3, 32, 32)).build()
    layers = list(model.features)
    convs = [i for i, m in enumerate(layers) if isinstance(m, nn.Conv2d)]
    assert len(convs) == 13 and all(isinstance(layers[i + 1], nn.BatchNorm2d) and isinstance(layers[i + 2], nn.ReLU)
                                    for i in convs)
    assert sum(isinstance(m, nn.MaxPool2d) for m in layers) == 5
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(512, 4096), (4096, 4096), (4096, 10)]
    assert sum(isinstance(m, nn.Dropout) for m in model.classifier) == 2


def test_initialisation_is_seeded():
    spec = ModelSpec("cnn", 10, (3, 32, 32))
    first, again = initial_state(spec, seed=1), initial_state(spec, seed=1)
    assert all((a == b).all() for a, b in zip(first, again))
    assert len(first) == len(entry_names(spec)) == 10


@pytest.mark.parametrize(("model", "dataset", "message"), [
    ("cnn-femnist", "cifar10", "--model cnn-femnist: needs 1x28x28 images (femnist, mnist, fmnist), not input of "
                               "shape 3x32x32 (--dataset cifar10)"),
    ("vgg16", "fmnist", "--model vgg16: needs 32x32 images (cifar), not input of shape 1x28x28 (--dataset fmnist)"),
    ("cnn", "synthetic", "--model cnn: needs images of at least 16x16 pixels, not input of shape 60"),
    ("resnet20", "synthetic", "--model resnet20: needs 32x32 images"),
    ("resnet9000", "cifar10", "--model 'resnet9000': accepted values are: mlp, cnn, cnn-femnist, resnet20, vgg16, "
                              "or package.module:factory"),
])
def test_a_model_that_cannot_take_the_input_is_refused(model, dataset, message):
    with pytest.raises(ConfigError) as err:
        check_model(model, DATASETS[dataset])
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


# --- custom models --------------------------------------------------------------------------

CUSTOM = '''
import math

from torch import nn

def tiny(num_classes, input_shape):
    return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), num_classes))

def no_arguments():
    return nn.Linear(60, 10)

def reference_style(num_classes, input_shape):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(60, num_classes)
        def forward(self, x):
            return {"output": self.fc(x)}
    return Net()

def with_dropout(num_classes, input_shape):
    return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), 32), nn.Dropout(0.5), nn.ReLU(),
                         nn.Linear(32, num_classes))

def not_a_module(num_classes, input_shape):
    return "a string"

def wrong_width(num_classes, input_shape):
    return nn.Linear(61, num_classes)

def bare_linear(num_classes, input_shape):
    return nn.Linear(math.prod(input_shape), num_classes)
'''


@pytest.fixture
def custom_module(tmp_path, monkeypatch):
    (tmp_path / "my_models.py").write_text(textwrap.dedent(CUSTOM))
    (tmp_path / "broken_models.py").write_text("import no_such_package_here\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "my_models"
    for name in ("my_models", "broken_models"):
        sys.modules.pop(name, None)


def test_custom_factory_builds_and_validates(custom_module):
    cfg = check(SimulationConfig(clients=5, model=f"{custom_module}:tiny"))
    spec = ModelSpec(cfg.model, 10, (60,))
    assert parameter_count(spec) == 610 and spec.build()(torch.zeros(4, 60)).shape == (4, 10)


def test_a_bare_linear_layer_is_a_model_whose_head_is_itself(custom_module):
    from fedmr_ray.models.info import model_info

    info = model_info(ModelSpec(f"{custom_module}:bare_linear", 10, (60,)))
    assert info.head == "" and info.head_entries == (0, 1) and info.names == ("weight", "bias")


@pytest.mark.parametrize(("factory", "message"), [
    ("my_models:no_arguments", "factory(num_classes=10, input_shape=(60,)) and a forward pass on torch's meta "
                               "device (where models are built to read their layout) failed (TypeError"),
    ("my_models:reference_style", "forward must return logits of shape [batch, 10], returned dict"),
    ("my_models:not_a_module", "the factory returned str, not a torch.nn.Module"),
    ("my_models:wrong_width", "failed (RuntimeError"),
    ("my_models:missing", "my_models has no callable 'missing'"),
    ("broken_models:tiny", "cannot import broken_models (ModuleNotFoundError: No module named 'no_such_package_here')"),
    ("no_such_module:f", "cannot import no_such_module (ModuleNotFoundError"),
    ("my_models:", "accepted values are"),
])
def test_bad_custom_model_is_one_line_exit_2(custom_module, tmp_path, monkeypatch, capsys, factory, message):
    monkeypatch.setattr(sys, "argv", ["fedmr-ray", "simulate", "--model", factory, "--output", str(tmp_path / "run")])
    with pytest.raises(SystemExit) as exit_info:
        main()
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 2 and len(err) == 1, err
    assert err[0].startswith(f"fedmr-ray: error: --model {factory!r}: ") and message in err[0], err[0]
    assert not (tmp_path / "run").exists()


# --- fedmr-ray models -----------------------------------------------------------------------

def test_models_command_lists_counts_for_a_dataset(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["fedmr-ray", "models", "--dataset", "cifar10"])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 0
    rows = {line.split()[0]: line.split()[1:] for line in capsys.readouterr().out.splitlines()}
    assert rows["model"] == ["cifar10"]
    assert rows["cnn"] == ["62,006"] and rows["resnet20"] == ["218,970"] and rows["vgg16"] == ["33,646,666"]
    assert rows["cnn-femnist"] == ["-"] and rows["mlp"] == ["402,250"]
    assert "custom:" in rows


def test_models_command_without_a_dataset_shows_every_dataset(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["fedmr-ray", "models"])
    with pytest.raises(SystemExit):
        main()
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["model", *DATASETS]
    femnist = lines[0].split().index("femnist")
    assert next(line for line in lines if line.startswith("cnn-femnist")).split()[femnist] == "160,510"


def test_validate_uses_the_model_registry_and_data_config():
    assert check(SimulationConfig(model="mlp", data=DataConfig())).model == "mlp"


def test_dropout_draws_follow_seed_round_and_client_whatever_ran_before(custom_module):
    import numpy as np
    import torch

    from fedmr_ray.config import TrainConfig
    from fedmr_ray.data import make_synthetic
    from fedmr_ray.models import initial_state
    from fedmr_ray.train import ClientTrainer, TrainJob

    data = make_synthetic(4, seed=3)
    spec = ModelSpec(f"{custom_module}:with_dropout", data.num_classes, data.input_shape)
    config = TrainConfig(local_epochs=1, batch_size=8)
    start = initial_state(spec, 3)

    def entries(trainer, job):
        return trainer.train(job, start).entries

    first = ClientTrainer(spec, data, config, seed=3)
    assert not first.vectorised  # dropout: one by one
    alone = entries(first, TrainJob(0, 2, 5))
    second = ClientTrainer(spec, data, config, seed=3)
    entries(second, TrainJob(0, 1, 5))  # another client first
    torch.rand(7)  # and other draws from the global generator
    after = entries(second, TrainJob(0, 2, 5))
    assert all(np.array_equal(a, b) for a, b in zip(alone, after))
    other_round = entries(second, TrainJob(0, 2, 6))
    assert not all(np.array_equal(a, b) for a, b in zip(alone, other_round))

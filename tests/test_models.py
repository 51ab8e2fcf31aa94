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
from fedmr_ray.models import ModelSpec, check_model, entry_names, initial_state, model_for, parameter_count
from fedmr_ray.models.info import model_info
from fedmr_ray.setup import check

COUNTS = [
    ("mlp", "synthetic", 16_714),  # 60-128-64-10, unchanged
    ("cnn", "cifar10", 62_006),  # conv 3->6, conv 6->16, FC 400-120-84-10
    ("cnn", "fmnist", 44_426),  # the 1-channel 28x28 variant: FC 256-120-84-10
    ("cnn", "mnist", 66_130),  # the reference's cnn on MNIST, CNNMnist: conv 1->20, conv 20->50, FC 800-50-10
    ("cnn", "femnist", 160_510),  # ... and on FEMNIST, CNNFashionMnist
    ("cnn-cifar", "mnist", 44_426),  # CNNCifar on any dataset
    ("cnn-mnist", "fmnist", 66_130),
    ("cnn-femnist", "femnist", 160_510),  # conv 1->16, conv 16->32, FC 512-256-62
    ("resnet20", "cifar10", 219_482),  # the reference's, its unused BatchNorm2d(256) included
    ("resnet20", "cifar100", 242_612),
    ("vgg16", "cifar10", 33_646_666),
    ("vgg16", "fmnist", 8_011_594),  # the reference's VGG16_mnist
    ("vgg16", "femnist", 8_024_958),
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
    assert len(bns) == 19 and all(torch.all(b.weight == 0.5) and torch.all(b.bias == 0) for b in bns)
    assert model.fc.in_features == 256
    # the BatchNorm2d(256) the reference declares after the last stage and never applies, where it has it
    names = list(model.state_dict())
    assert names[-7:] == ["bn.weight", "bn.bias", "bn.running_mean", "bn.running_var", "bn.num_batches_tracked",
                          "fc.weight", "fc.bias"] and len(names) == 119
    x = torch.randn(2, 3, 32, 32)
    before = model.eval()(x)
    with torch.no_grad():
        model.bn.weight.fill_(7.0)
    assert torch.equal(model(x), before)
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


def test_resnet20s_unused_batchnorm_trains_as_the_reference_and_counts_in_the_blocks():
    """Its entries get a zero gradient: plain SGD and the local rules (FedProx's, SCAFFOLD's) leave
    them as they were, and every other entry trains; `block:P` cuts the reference's 119 entries."""
    import numpy as np

    from fedmr_ray.algorithms.fedprox import ProximalRule
    from fedmr_ray.algorithms.scaffold import ControlVariateRule
    from fedmr_ray.config import TrainConfig
    from fedmr_ray.data import FederatedDataset
    from fedmr_ray.recombine import entry_groups
    from fedmr_ray.train import ClientTrainer, TrainJob

    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(24, 1, 28, 28)).astype(np.float32), rng.integers(0, 10, 24)
    data = FederatedDataset("images", x, y, x[:8], y[:8], np.array([0, 12, 24]), 10)
    spec = ModelSpec("resnet20", 10, (1, 28, 28))
    names, start = entry_names(spec), initial_state(spec, 0)
    unused = [e for e, name in enumerate(names) if name.startswith("bn.")]
    params = model_info(spec).param_entries
    # zero on the unused entries, as a run's control variates stay: their corrections start at zero
    server = {"control": [np.full_like(e, 0.0 if i in unused else 0.1, dtype=np.float32) for i, e in enumerate(start)]}
    for local, server_state in ((None, None), (ProximalRule(0.5), None), (ControlVariateRule(params, 24.0, 2), server)):
        trainer = ClientTrainer(spec, data, TrainConfig(local_epochs=1, batch_size=6), seed=0, local=local)
        trained = trainer.train(TrainJob(0, 1, 0), start, {}, server_state)
        assert all(np.array_equal(trained.entries[e], start[e]) for e in unused)
        assert all(not np.array_equal(trained.entries[e], start[e]) for e in params if e not in unused)
    groups = entry_groups(names, "block:0.25")  # a new block where entry i >= 119 x 0.25 x blocks so far
    assert len(names) == 119 and [int(np.argmax(groups == g)) for g in range(4)] == [0, 30, 60, 90]


def test_vgg16_on_28x28_is_the_references_vgg16_mnist():
    model = ModelSpec("vgg16", 62, (1, 28, 28)).build()
    convs = [m for m in model.features if isinstance(m, nn.Conv2d)]
    assert [(m.in_channels, m.out_channels, m.kernel_size, m.padding) for m in convs] == [
        (1, 64, (1, 1), (1, 1)), (64, 64, (3, 3), (1, 1)), (64, 128, (3, 3), (1, 1)), (128, 256, (3, 3), (1, 1)),
        (256, 512, (3, 3), (1, 1))]
    assert [m.stride for m in model.features if isinstance(m, nn.MaxPool2d)] == [1, 1, 2]
    assert not any(isinstance(m, (nn.BatchNorm2d, nn.Dropout)) for m in model.modules())
    assert [(m.in_features, m.out_features) for m in model.modules() if isinstance(m, nn.Linear)] == [(25088, 256),
                                                                                                    (256, 62)]
    assert isinstance(model.features[-1], nn.Linear)  # no ReLU between the two linear layers
    assert [name for name in model.state_dict()][::2] == ["features.0.weight", "features.2.weight", "features.5.weight",
                                                          "features.8.weight", "features.10.weight",
                                                          "features.15.weight", "fc.weight"]  # the reference's names


def test_cnn_is_the_one_the_reference_picks_for_the_dataset(tmp_path):
    from datafiles import write_idx

    from fedmr_ray import simulate
    from fedmr_ray.config import TrainConfig
    from fedmr_ray.results import load_model
    from fedmr_ray.setup import prepare

    assert [model_for("cnn", d) for d in ("mnist", "femnist", "fmnist", "cifar10")] == [
        "cnn-mnist", "cnn-femnist", "cnn", "cnn"]
    assert model_for("cnn-cifar", "mnist") == "cnn-cifar" and model_for("vgg16", "mnist") == "vgg16"
    write_idx(tmp_path / "mnist")
    data = DataConfig(dataset="mnist", data_dir=str(tmp_path / "mnist"), cache_dir=str(tmp_path / "cache"),
                      partition="iid")
    config = SimulationConfig(clients=4, fraction=0.5, rounds=1, model="cnn", data=data, output=str(tmp_path / "run"),
                              train=TrainConfig(local_epochs=1))
    assert prepare(config).spec.name == "cnn-mnist"
    simulate(config, serial=True)
    model = load_model(tmp_path / "run")  # config.json says cnn: on MNIST, the reference's CNNMnist
    assert sum(p.numel() for p in model.parameters()) == 66_130 and model.conv1.out_channels == 20


@pytest.mark.parametrize(("model", "dataset", "width"), [
    ("cnn", "cifar10", 84), ("cnn", "mnist", 50), ("cnn", "femnist", 256), ("resnet20", "cifar10", 256),
    ("resnet20", "femnist", 256), ("vgg16", "cifar10", 4096), ("vgg16", "fmnist", 256)])
def test_moons_representation_is_the_input_of_the_last_linear_layer(model, dataset, width):
    """What the reference's models return as 'representation' (MOON's z, without its optional
    projection head; checked against them by loading their weights into these models): the input of
    the classifier. Its VGG16s return none; here the same rule gives theirs too."""
    spec = DATASETS[dataset]
    info = model_info(ModelSpec(model_for(model, dataset), spec.num_classes, spec.input_shape))
    assert info.representation_dim == width


def test_initialisation_is_seeded():
    spec = ModelSpec("cnn", 10, (3, 32, 32))
    first, again = initial_state(spec, seed=1), initial_state(spec, seed=1)
    assert all((a == b).all() for a, b in zip(first, again))
    assert len(first) == len(entry_names(spec)) == 10


@pytest.mark.parametrize(("model", "dataset", "message"), [
    ("cnn-femnist", "cifar10", "--model cnn-femnist: needs 1x28x28 images (femnist, mnist, fmnist), not input of "
                               "shape 3x32x32 (--dataset cifar10)"),
    ("cnn-mnist", "cifar10", ("--model cnn-mnist: needs 1x28x28 images (femnist, mnist, fmnist), not input of "
                              "shape 3x32x32 (--dataset cifar10)")),
    ("vgg16", "synthetic", ("--model vgg16: needs 32x32 images (cifar) or 1x28x28 ones (femnist, mnist, fmnist), "
                            "not input of shape 60 (--dataset synthetic)")),
    ("cnn", "synthetic", "--model cnn: needs images of at least 16x16 pixels, not input of shape 60"),
    ("resnet20", "synthetic", "--model resnet20: needs 32x32 images"),
    ("resnet9000", "cifar10", "--model 'resnet9000': accepted values are: mlp, cnn, cnn-cifar, cnn-mnist, "
                              "cnn-femnist, resnet20, vgg16, lstm, or package.module:factory"),
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
    assert rows["cnn"] == ["62,006"] and rows["resnet20"] == ["219,482"] and rows["vgg16"] == ["33,646,666"]
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

"""Models by name: each factory takes (num_classes, input_shape) and returns an nn.Module whose
forward gives logits. Besides the registry's names, `package.module:factory` names a factory of
one's own, imported where the model is built."""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from fedmr_ray.errors import ConfigError, SettingError, one_line
from fedmr_ray.models.cnn import cnn, cnn_femnist, cnn_mnist
from fedmr_ray.models.lstm import lstm
from fedmr_ray.models.mlp import mlp
from fedmr_ray.models.resnet import resnet20
from fedmr_ray.models.vgg import vgg16
from fedmr_ray.rng import Stream, torch_seed

if TYPE_CHECKING:
    from fedmr_ray.data.catalog import DatasetSpec

Factory = Callable[[int, tuple[int, ...]], nn.Module]

MODELS: dict[str, Factory] = {
    "mlp": mlp, "cnn": cnn, "cnn-cifar": cnn, "cnn-mnist": cnn_mnist, "cnn-femnist": cnn_femnist,
    "resnet20": resnet20, "vgg16": vgg16, "lstm": lstm,
}
TEXT_MODELS = ("lstm",)  # take character indices: a text dataset's models, and only theirs
CUSTOM = "package.module:factory"
# The reference's main_fed.py picks its `cnn` by dataset: CNNMnist on MNIST, CNNFashionMnist on
# FEMNIST, CNNCifar elsewhere. `--model cnn` does the same; `cnn-cifar` is CNNCifar on any dataset.
BY_DATASET = {("cnn", "mnist"): "cnn-mnist", ("cnn", "femnist"): "cnn-femnist"}


def model_for(name: str, dataset: str) -> str:
    """The registry's model that `--model name` builds on this dataset."""
    return BY_DATASET.get((name, dataset), name)


def _custom_factory(name: str) -> Factory:
    module_name, _, attribute = name.partition(":")
    if os.getcwd() not in sys.path:  # a module of the current directory, as `python -m` finds it
        sys.path.append(os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except Exception as err:  # whatever the module raises on import is the user's to see
        raise model_error(name, f"cannot import {module_name} ({type(err).__name__}: "
                          f"{one_line(err)})") from None
    factory = getattr(module, attribute, None)
    if not callable(factory):
        raise model_error(name, f"{module_name} has no callable {attribute!r}")
    return factory


def custom_source(name: str) -> Path | None:
    """The file or package a custom factory's module comes from, where it is not an installed
    package (a module of the current directory, say): what the Ray workers are sent to import it.
    None for the registry's models and installed packages."""
    if name in MODELS:
        return None
    _custom_factory(name)  # imported here first (a ConfigError where it cannot be)
    top = sys.modules[name.partition(":")[0].split(".")[0]]
    origin = Path(top.__file__ or "")
    path = origin.parent if origin.name == "__init__.py" else origin
    installed = any(part in ("site-packages", "dist-packages") for part in path.parts)
    return None if installed or not path.exists() else path


def model_error(name: str, problem: str) -> SettingError:
    return SettingError("model", "--model", name, problem)


def model_factory(name: str) -> Factory:
    if name in MODELS:
        return MODELS[name]
    module_name, colon, attribute = name.partition(":")
    if not (colon and module_name and attribute.isidentifier()):
        raise model_error(name, f"accepted values are: {', '.join(MODELS)}, or {CUSTOM}")
    return _custom_factory(name)


@dataclass(frozen=True)
class ModelSpec:
    """Everything an executor needs to build the model it trains."""

    name: str
    num_classes: int
    input_shape: tuple[int, ...]
    tokens: bool = False  # the inputs are character indices (a text dataset's), not numbers

    def build(self) -> nn.Module:
        return model_factory(self.name)(self.num_classes, tuple(self.input_shape))


def _built(spec: ModelSpec) -> nn.Module:
    """The model on the meta device (no memory, no initialisation cost). A custom one is checked:
    an nn.Module whose forward on a batch of two inputs gives [2, classes] logits (the registry's
    factories refuse inputs they cannot take, and their forward is tested)."""
    if spec.name in MODELS:
        with torch.device("meta"):
            return spec.build()
    try:
        with torch.device("meta"):
            model = spec.build()
            if not isinstance(model, nn.Module):
                raise model_error(spec.name, f"the factory returned {type(model).__name__}, "
                                  "not a torch.nn.Module")
            out = model.eval()(torch.zeros((2, *spec.input_shape), dtype=torch.long if spec.tokens else None))
    except ConfigError:
        raise
    except Exception as err:
        raise model_error(spec.name, f"factory(num_classes={spec.num_classes}, input_shape="
                          f"{tuple(spec.input_shape)}) and a forward pass on torch's meta device (where models are "
                          f"built to read their layout) failed ({type(err).__name__}: {one_line(err)})") from None
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (2, spec.num_classes):
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise model_error(spec.name, f"forward must return logits of shape [batch, "
                          f"{spec.num_classes}], returned {got}")
    return model


def parameter_count(spec: ModelSpec) -> int:
    return sum(p.numel() for p in _built(spec).parameters())


def model_spec(name: str, dataset: DatasetSpec) -> ModelSpec:
    """What `--model name` builds on this dataset."""
    return ModelSpec(model_for(name, dataset.name), dataset.num_classes, dataset.input_shape, dataset.is_text)


def check_model(name: str, dataset: DatasetSpec) -> int:
    """The model's parameter count on this dataset, or a ConfigError where it cannot take its input."""
    if name in MODELS and (name in TEXT_MODELS) != dataset.is_text:
        from fedmr_ray.data.catalog import DATASETS

        needs = (f"lines of characters ({', '.join(d for d, s in DATASETS.items() if s.is_text)})"
                 if name in TEXT_MODELS else "numeric inputs")
        accepted = ", ".join(m for m in MODELS if (m in TEXT_MODELS) == dataset.is_text)
        raise SettingError("model", "--model", name, f"needs {needs}, not --dataset {dataset.name}'s "
                           f"{'character indices' if dataset.is_text else 'inputs'}; models for it: {accepted}, "
                           f"or {CUSTOM}", quote=False)
    try:
        return parameter_count(model_spec(name, dataset))
    except SettingError as err:
        if name in MODELS:  # a shape mismatch: say which dataset gave the shape
            raise SettingError("model", "--model", name, f"{err.problem} (--dataset {dataset.name})",
                               quote=False) from None
        raise


def parameter_counts(datasets: list[DatasetSpec]) -> dict[str, list[int | None]]:
    """Each registered model's parameter count on each dataset; None where it cannot take the input."""
    table: dict[str, list[int | None]] = {}
    for name in MODELS:
        table[name] = []
        for dataset in datasets:
            try:
                table[name].append(check_model(name, dataset))
            except ConfigError:
                table[name].append(None)
    return table


def entry_names(spec: ModelSpec) -> list[str]:
    """The state-dict entries (parameters and buffers) in order: what FedMR recombines."""
    with torch.device("meta"):
        return list(spec.build().state_dict().keys())


def initial_state(spec: ModelSpec, seed: int, index: int = 0) -> list[np.ndarray]:
    """The state entries of a freshly initialised model, seeded by (seed, index)."""
    torch.manual_seed(torch_seed(seed, Stream.INIT, index))
    return [t.detach().cpu().numpy().copy() for t in spec.build().state_dict().values()]

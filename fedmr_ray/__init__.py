"""fedmr-ray: Federated Model Recombination (FedMR) simulated at scale on Ray actors.

The configuration is importable alone (`fedmr_ray.config` loads neither torch nor Ray); `simulate`
and the rest load when first used."""

from fedmr_ray.config import (
    AlgorithmConfig,
    ConfigError,
    DataConfig,
    RuntimeConfig,
    SimulationConfig,
    TrainConfig,
)

__all__ = ["AlgorithmConfig", "ConfigError", "DataConfig", "RuntimeConfig", "SimulationConfig",
           "TrainConfig", "simulate"]
__version__ = "0.1.0"


def __getattr__(name: str):
    if name == "simulate":
        from fedmr_ray.api import simulate

        return simulate
    raise AttributeError(f"module 'fedmr_ray' has no attribute {name!r}")

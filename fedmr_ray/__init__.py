"""fedmr-ray: Federated Model Recombination (FedMR) simulated at scale on Ray actors."""

from fedmr_ray.api import simulate
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

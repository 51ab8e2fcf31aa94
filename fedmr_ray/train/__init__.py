"""Local training and evaluation, in plain PyTorch (no Ray): the trainer of one client after another
(trainer.py), several clients at once (lanes.py), evaluation (evaluate.py), the cost of a step
(timing.py), and the hooks algorithms implement to change local training (hooks.py)."""

from fedmr_ray.train.hooks import LocalRule, LocalRun
from fedmr_ray.train.steps import ClientResult, Entries, Trained, TrainJob, sgd_step
from fedmr_ray.train.timing import step_cost
from fedmr_ray.train.trainer import ClientTrainer

__all__ = ["ClientResult", "ClientTrainer", "Entries", "LocalRule", "LocalRun", "TrainJob", "Trained", "sgd_step",
           "step_cost"]

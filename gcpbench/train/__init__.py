"""Training: the paper's schedules, the loop (AMP, channels_last, DDP), checkpoints and resume.

Modules: ``schedules`` (learning_rate, defaults), ``config`` (options -> config.json, resume
checks), ``trainer`` (the loop), ``state`` (RNG / optimizer state in checkpoints),
``distributed`` (torchrun process groups, metric all-reduce), ``progress`` (bars, log lines),
``plots`` (convergence figure).
"""
from gcpbench.train.config import TrainOptions
from gcpbench.train.schedules import SCHEDULES, defaults, learning_rate, make_schedule, schedule_defaults
from gcpbench.train.trainer import train

__all__ = ["SCHEDULES", "TrainOptions", "defaults", "learning_rate", "make_schedule", "schedule_defaults", "train"]

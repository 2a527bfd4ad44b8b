"""Training: one trainer for any assembled model, single process or under torchrun (DDP/FSDP).

``fit(model, data, options, run_dir)`` is the one way to train any model (``distgen.fit``);
``distgen train CONFIG --out RUN_DIR`` the command-line one (``distgen.train.run``). See ``docs/training.md``.
"""

from distgen.train.checkpoint import CheckpointError, load_checkpoint
from distgen.train.loop import fit
from distgen.train.options import TrainOptions, train_options
from distgen.train.trainer import DetachedLossError, NoGradientWarning, NonFiniteLossError, Trainer, TrainResult

__all__ = ["CheckpointError", "DetachedLossError", "NoGradientWarning", "NonFiniteLossError", "TrainOptions", "TrainResult", "Trainer", "fit", "load_checkpoint", "train_options"]

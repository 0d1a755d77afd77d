"""Training support shared by the real experiments: the fine-tuning loop (`loop`), checkpoint and resume."""

from common.training.checkpoint import Checkpointer, preemption_signal
from common.training.loop import Optimization, TrainingState, fit, predictions, top1, total_steps

__all__ = [
    "Checkpointer",
    "Optimization",
    "TrainingState",
    "fit",
    "predictions",
    "preemption_signal",
    "top1",
    "total_steps",
]

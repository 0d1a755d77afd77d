"""Training support shared by the real experiments: checkpoint and resume."""

from common.training.checkpoint import Checkpointer, preemption_signal

__all__ = ["Checkpointer", "preemption_signal"]

"""Estimation rates under softmax, dense-to-sparse and hierarchical softmax gating MoE (Nguyen et al.)."""

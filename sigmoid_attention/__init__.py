"""Yan et al., Sigmoid self-attention has lower sample complexity than softmax self-attention: an MoE perspective."""

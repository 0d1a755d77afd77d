"""Layers the papers share by nature: attention with a configurable value activation and normaliser
(`attention`), a sparse mixture-of-experts feed-forward block with linear or quadratic routers (`moe`), and the
element-wise activations they choose from (`activations`). Import the modules themselves, e.g.
`from common.layers.attention import MultiHeadAttention`.
"""

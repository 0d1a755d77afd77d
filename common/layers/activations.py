"""Element-wise activations by name, for configs: the value activations of active attention (quadratic-gating
Eq. (20)), the experts of the MoE block and the hypernetworks of the adapters."""

from torch import nn

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "identity": nn.Identity,
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
}

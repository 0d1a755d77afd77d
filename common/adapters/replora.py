"""RepLoRA: the low-rank factors of Q and V (and K) are generated from shared learnable diagonal matrices
A = diag(a), B = diag(b) (RepLoRA Eq. (18), Sec. 4.2, App. D.2).

Non-linear (the method of Sec. 5): two-layer MLPs with h = 64 hidden units, a shared first layer and one
output head per projection t,

    A_t = H_{A,t} s(W_A A)      W_A (h, in),  H_{A,t} (r, h)      -> A_t (r, in)
    B_t = s(B W_B) H_{B,t}      W_B (out, h), H_{B,t} (h, r)      -> B_t (out, r)

i.e. the network runs over the columns of A (rows of B): column j of A_t is the network's output for the
input a_j e_j. Linear (Sec. 4.2.1, "linear layers without activation" in App. D.2): one linear layer per
projection on the shared input, A_t = W_{A,t} A (W_{A,t} (r, in)), B_t = B W_{B,t} (W_{B,t} (out, r)).

This reading follows Sec. 4.2's phi_1(A) = W_1 A with a square diagonal A; it does not reproduce the printed
parameter counts, which no reading reproduces (README.md of this package). Initialisation (not given in the
paper): a = b = 1, Kaiming-uniform weights, zero output weights of the B side, so Delta W = 0 at the start as
in LoRA. No biases. The paper does not name s; its theory (assumptions A.1-A.2: algebraic independence, a
second-order Lipschitz activation) excludes ReLU. The default is the smooth, zero-centred
``DEFAULT_ACTIVATION`` (chosen by validation accuracy, README); ReLU is the option ``activation="relu"``.
"""

from __future__ import annotations

import torch
from torch import nn

from common.adapters.layers import FactorGenerator, kaiming_uniform
from common.adapters.targets import Target
from common.config import ConfigError
from common.layers.activations import ACTIVATIONS

DEFAULT_ACTIVATION = "gelu"


class RepLoRAFactors(FactorGenerator):
    def __init__(
        self,
        targets: list[Target],
        rank: int,
        linear: bool = False,
        hidden_dim: int = 64,
        activation: str = DEFAULT_ACTIVATION,
    ):
        super().__init__(targets, rank)
        if hidden_dim <= 0:
            raise ConfigError.invalid("hidden_dim", hidden_dim, "a positive integer")
        if activation not in ACTIVATIONS:
            raise ConfigError.invalid("activation", activation, f"one of {', '.join(ACTIVATIONS)}")
        fan_in, fan_out = {t.in_features for t in targets}, {t.out_features for t in targets}
        if len(fan_in) != 1 or len(fan_out) != 1:
            raise ConfigError.invalid(
                "targets",
                [t.name for t in targets],
                "projections of one shape (RepLoRA generates their factors from shared inputs); got "
                + ", ".join(f"{t.name}: {t.in_features} -> {t.out_features}" for t in targets),
            )
        fan_in, fan_out = fan_in.pop(), fan_out.pop()
        self.linear = linear
        self.a_diagonal = nn.Parameter(torch.ones(fan_in))
        self.b_diagonal = nn.Parameter(torch.ones(fan_out))
        names = [t.name for t in targets]
        if linear:
            self.a_heads = nn.ParameterDict({n: kaiming_uniform(rank, fan_in) for n in names})  # W_{A,t}
            self.b_heads = nn.ParameterDict({n: nn.Parameter(torch.zeros(fan_out, rank)) for n in names})  # W_{B,t}
        else:
            self.a_shared = kaiming_uniform(hidden_dim, fan_in)  # W_A
            self.b_shared = kaiming_uniform(fan_out, hidden_dim)  # W_B
            self.a_heads = nn.ParameterDict({n: kaiming_uniform(rank, hidden_dim) for n in names})  # H_{A,t}
            self.b_heads = nn.ParameterDict({n: nn.Parameter(torch.zeros(hidden_dim, rank)) for n in names})  # H_{B,t}
            self.activation = ACTIVATIONS[activation]()

    def generate(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        if self.linear:
            return {
                name: (self.b_diagonal[:, None] * self.b_heads[name], self.a_heads[name] * self.a_diagonal)
                for name in self.target_shapes
            }
        hidden_a = self.activation(self.a_shared * self.a_diagonal)  # s(W_A diag(a)): (h, in)
        hidden_b = self.activation(self.b_diagonal[:, None] * self.b_shared)  # s(diag(b) W_B): (out, h)
        return {name: (hidden_b @ self.b_heads[name], self.a_heads[name] @ hidden_a) for name in self.target_shapes}

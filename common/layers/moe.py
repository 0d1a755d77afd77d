"""A sparse mixture-of-experts feed-forward block with top-k routing and a linear or low-rank quadratic router.

    moe = MoEFeedForward(dim=768, hidden=1536, num_experts=8, top_k=2, router="quadratic", rank=32)
    y, aux = moe(x)                     # (B, T, dim), the load-balancing loss of this call
    loss = lm_loss + 0.01 * aux

Routers give each token a score per expert:

- `linear`: s_i(x) = w_i^T x (the usual MoE router);
- `quadratic` (quadratic-gating paper Eq. (8)-(9) with the low-rank embeddings of its App. G): a linear term plus
  s_i(x) = (W^q x)^T (W^k_i x) / sqrt(r), with W^q (r, d) shared by the experts and one W^k_i (r, d) per expert:
  the token's query against each expert's key, as attention scores a token against the keys. The 1 / sqrt(r)
  scaling is ours, as in attention (the paper's Eq. (9) has none; it only rescales the initialisation).

Each token goes to its top-k experts with weights softmax over their k scores. Dispatch sorts the (token, expert)
assignments by expert and runs each expert once on all its tokens (a loop over experts, never over tokens); the
outputs are added back with `index_add_`. The auxiliary loss is the usual load-balancing term
E * sum_i f_i P_i (f_i: share of the assignments that go to expert i, P_i: mean router probability of expert i),
1 when the load is even.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from common.config import ConfigError
from common.layers.activations import ACTIVATIONS

ROUTERS = ("linear", "quadratic")


class LinearRouter(nn.Module):
    def __init__(self, dim: int, num_experts: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(num_experts, dim) / math.sqrt(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.weight.T  # (N, E)


class QuadraticRouter(nn.Module):
    """Linear term + (W^q x)^T (W^k_i x) / sqrt(r) for every expert i.

    The linear weights, W^q and the stacked W^k_i are applied in one matrix product (one kernel instead of three);
    the parameters stay separate.
    """

    def __init__(self, dim: int, num_experts: int, rank: int) -> None:
        super().__init__()
        self.linear = LinearRouter(dim, num_experts)
        self.query = nn.Parameter(torch.randn(rank, dim) / math.sqrt(dim))  # W^q (r, d)
        self.keys = nn.Parameter(torch.randn(num_experts * rank, dim) / math.sqrt(dim))  # W^k_i stacked (E r, d)
        self.num_experts, self.rank = num_experts, rank

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        experts, rank = self.num_experts, self.rank
        z = x @ torch.cat([self.linear.weight, self.query, self.keys]).T  # (N, E + r + E r)
        linear, q, k = z.split([experts, rank, experts * rank], dim=-1)
        return linear + torch.einsum("nr,ner->ne", q, k.reshape(-1, experts, rank)) / math.sqrt(rank)  # (N, E)


class MoEFeedForward(nn.Module):
    """Top-k routed experts, each a two-layer MLP dim -> hidden -> dim; returns (output, load-balancing loss)."""

    def __init__(
        self,
        dim: int,
        hidden: int,
        num_experts: int,
        top_k: int = 2,
        router: str = "linear",
        rank: int = 32,
        activation: str = "gelu",
        bias: bool = True,
    ) -> None:
        super().__init__()
        if router not in ROUTERS:
            raise ConfigError.invalid("router", router, f"one of {', '.join(ROUTERS)}")
        if not 1 <= top_k <= num_experts:
            raise ConfigError.invalid("top_k", top_k, f"an integer in [1, num_experts = {num_experts}]")
        if activation not in ACTIVATIONS:
            raise ConfigError.invalid("activation", activation, f"one of {', '.join(ACTIVATIONS)}")
        if router == "quadratic" and not 1 <= rank <= dim:
            raise ConfigError.invalid("rank", rank, f"an integer in [1, dim = {dim}]")
        self.router = LinearRouter(dim, num_experts) if router == "linear" else QuadraticRouter(dim, num_experts, rank)
        self.num_experts, self.top_k = num_experts, top_k
        self.w1 = nn.Parameter(torch.randn(num_experts, dim, hidden) / math.sqrt(dim))  # (E, d, h)
        self.w2 = nn.Parameter(torch.randn(num_experts, hidden, dim) / math.sqrt(hidden))  # (E, h, d)
        self.b1 = nn.Parameter(torch.zeros(num_experts, hidden)) if bias else None
        self.b2 = nn.Parameter(torch.zeros(num_experts, dim)) if bias else None
        self.activation = ACTIVATIONS[activation]()

    def expert(self, e: int, x: torch.Tensor) -> torch.Tensor:
        h = x @ self.w1[e] + (self.b1[e] if self.b1 is not None else 0)
        return self.activation(h) @ self.w2[e] + (self.b2[e] if self.b2 is not None else 0)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        shape = x.shape
        tokens = x.reshape(-1, shape[-1])  # (N, d)
        logits = self.router(tokens)  # (N, E)
        top_logits, experts = logits.topk(self.top_k, dim=-1)  # (N, k)
        weights = top_logits.softmax(-1)  # (N, k)
        flat_experts = experts.reshape(-1)  # (N k,)
        order = flat_experts.argsort(stable=True)  # assignments grouped by expert
        counts = torch.bincount(flat_experts, minlength=self.num_experts).tolist()
        out = torch.zeros_like(tokens)
        for e, chunk in enumerate(torch.split(order, counts)):  # chunk: the assignments of expert e
            if len(chunk):
                rows = chunk // self.top_k  # their tokens
                out.index_add_(0, rows, self.expert(e, tokens[rows]) * weights.reshape(-1)[chunk, None])
        share = torch.tensor(counts, dtype=x.dtype, device=x.device) / flat_experts.numel()  # f_i
        aux = self.num_experts * (share * F.softmax(logits, -1).mean(0)).sum()
        return out.reshape(shape), aux

    def active_parameters(self) -> int:
        """Parameters one token uses: the router and top_k experts."""
        per_expert = sum(p[0].numel() for p in (self.w1, self.w2, self.b1, self.b2) if p is not None)
        return sum(p.numel() for p in self.router.parameters()) + self.top_k * per_expert

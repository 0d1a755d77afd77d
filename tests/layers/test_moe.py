"""The sparse MoE block against a token-by-token reference, its routers, load-balancing loss and errors."""

import math

import pytest
import torch

from common.config import ConfigError
from common.layers.moe import MoEFeedForward, QuadraticRouter


def reference(moe: MoEFeedForward, x: torch.Tensor) -> torch.Tensor:
    """Token by token: the top-k experts by router score, weighted by the softmax of their scores."""
    tokens = x.reshape(-1, x.shape[-1])
    out = []
    for token in tokens:
        scores = moe.router(token[None])[0]
        top = scores.topk(moe.top_k).indices
        weights = scores[top].softmax(-1)
        out.append(sum(w * moe.expert(int(e), token[None])[0] for w, e in zip(weights, top, strict=True)))
    return torch.stack(out).reshape(x.shape)


@pytest.mark.parametrize("router", ["linear", "quadratic"])
@pytest.mark.parametrize("top_k", [1, 2, 4])
def test_dispatch_equals_the_token_by_token_reference(router, top_k):
    torch.manual_seed(0)
    moe = MoEFeedForward(8, 16, num_experts=4, top_k=top_k, router=router, rank=3).double()
    x = torch.randn(3, 5, 8, dtype=torch.float64)
    y, aux = moe(x)
    assert torch.allclose(y, reference(moe, x), atol=1e-12)
    if top_k == 4:  # every expert takes every token: f_i = 1 / E, so E sum f_i P_i = sum P_i = 1
        assert aux.item() == pytest.approx(1.0)
    assert aux.item() > 0
    y.pow(2).sum().add(aux).backward()
    assert all(p.grad is not None for p in moe.parameters())  # the router learns through weights and aux


def test_quadratic_router_is_query_against_expert_keys():
    torch.manual_seed(0)
    router = QuadraticRouter(6, 3, rank=2).double()
    x = torch.randn(4, 6, dtype=torch.float64)
    keys = router.keys.view(3, 2, 6)
    expected = torch.stack(
        [
            x @ router.linear.weight[i] + ((x @ router.query.T) * (x @ keys[i].T)).sum(-1) / math.sqrt(2)
            for i in range(3)
        ],
        dim=-1,
    )
    assert torch.allclose(router(x), expected)


def test_even_load_gives_an_auxiliary_loss_of_one():
    moe = MoEFeedForward(4, 8, num_experts=4, top_k=4)
    with torch.no_grad():
        moe.router.weight.zero_()  # uniform probabilities, every expert gets every token
    _, aux = moe(torch.randn(2, 3, 4))
    assert aux.item() == pytest.approx(1.0)


def test_active_parameters_count_the_router_and_top_k_experts():
    moe = MoEFeedForward(8, 16, num_experts=4, top_k=2, router="quadratic", rank=2)
    expert = 8 * 16 + 16 + 16 * 8 + 8
    assert moe.active_parameters() == 4 * 8 + 2 * 8 + 4 * 2 * 8 + 2 * expert


@pytest.mark.parametrize(
    "kwargs, field",
    [({"router": "cosine"}, "router"), ({"top_k": 5}, "top_k"), ({"router": "quadratic", "rank": 0}, "rank"),
     ({"activation": "swish"}, "activation")],
)  # fmt: skip
def test_bad_settings_name_the_field(kwargs, field):
    with pytest.raises(ConfigError, match=field):
        MoEFeedForward(**{"dim": 8, "hidden": 16, "num_experts": 4, **kwargs})

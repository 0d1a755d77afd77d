"""Every adapter method on every backbone layout through the same checks (tiny random models built here)."""

from __future__ import annotations

import copy

import peft
import pytest
import timm
import torch
from torch import nn
from transformers import BertConfig, BertModel, GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

from common.adapters import (
    METHODS,
    adapter_state_dict,
    apply_adapters,
    count_trainable,
    export_peft_lora,
    load_adapters,
    lora_factors,
    merge_adapters,
    save_adapters,
    unmerge_adapters,
)
from common.adapters.layers import AdaptedProjection, FactorGenerator
from common.config import ConfigError

WIDTH, HEADS = 32, 4


def llama():
    cfg = LlamaConfig(
        hidden_size=WIDTH,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=HEADS,
        num_key_value_heads=HEADS,
        vocab_size=61,
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=2,
    )
    return LlamaForCausalLM(cfg)


def bert():
    cfg = BertConfig(
        hidden_size=WIDTH,
        num_hidden_layers=2,
        num_attention_heads=HEADS,
        intermediate_size=64,
        vocab_size=61,
        pad_token_id=0,
    )
    return BertModel(cfg)


def gpt2():
    return GPT2LMHeadModel(
        GPT2Config(n_embd=WIDTH, n_layer=2, n_head=HEADS, vocab_size=61, bos_token_id=0, eos_token_id=1)
    )


def vit():
    return timm.create_model(
        "vit_tiny_patch16_224",
        pretrained=False,
        img_size=16,
        patch_size=8,
        embed_dim=WIDTH,
        depth=2,
        num_heads=HEADS,
        num_classes=5,
    )


def swin3d(depths=(2,), heads=(HEADS,)):
    """torchvision's Video Swin (the swin3d_b of RepLoRA Table 4) at a tiny size: fused qkv in 3-D window attention,
    the MLP as a Sequential (mlp.0 / mlp.3)."""
    from torchvision.models.video.swin_transformer import SwinTransformer3d

    return SwinTransformer3d(
        patch_size=[2, 4, 4], embed_dim=WIDTH, depths=list(depths), num_heads=list(heads), window_size=[2, 2, 2],
        num_classes=5,
    )  # fmt: skip


BACKBONES = {"llama": llama, "bert": bert, "gpt2": gpt2, "vit": vit, "swin3d": swin3d}
VISION = ("vit", "swin3d")  # image / video inputs; their fused qkv stores its weight (3d, in)


def base_model(name: str) -> nn.Module:
    torch.manual_seed(0)
    return BACKBONES[name]().eval()


def inputs(name: str) -> torch.Tensor:
    generator = torch.Generator().manual_seed(1)
    if name == "vit":
        return torch.randn(2, 3, 16, 16, generator=generator)
    if name == "swin3d":
        return torch.randn(2, 3, 4, 16, 16, generator=generator)  # (B, C, T, H, W): 2 x 4 x 4 patches
    return torch.randint(3, 61, (2, 7), generator=generator)


def output(model: nn.Module, name: str, x: torch.Tensor) -> torch.Tensor:
    if name in VISION:
        return model(x)
    out = model(input_ids=x)
    return out.last_hidden_state if name == "bert" else out.logits


def adapted(method: str, name: str, **kw) -> nn.Module:
    model = base_model(name)
    torch.manual_seed(2)
    return apply_adapters(model, method, targets=("q", "v"), rank=4, alpha=8, **kw)


def train_steps(model: nn.Module, name: str, steps: int = 2, x: torch.Tensor | None = None) -> None:
    """A few Adam steps on the mean output: every adapter factor then differs from its initialisation."""
    optimiser = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    x = inputs(name) if x is None else x
    for _ in range(steps):
        optimiser.zero_grad()
        output(model, name, x).pow(2).mean().backward()
        optimiser.step()


CASES = [(method, name) for method in sorted(METHODS) for name in BACKBONES]
# every option that changes how a method starts or which activation its generator uses
OPTIONS = [
    ("replora", {"activation": "relu"}),
    ("replora", {"activation": "gelu"}),
    ("hyra", {"a_activation": "sigmoid"}),
    ("hyra", {"a_activation": "gelu"}),
    ("hyra", {"init": "paper_text", "a_activation": "sigmoid"}),
]
OPTION_CASES = [(m, {}, name) for m, name in CASES] + [(m, kw, name) for m, kw in OPTIONS for name in BACKBONES]
OPTION_IDS = [f"{m}-{'-'.join(f'{k}={v}' for k, v in kw.items())}-{name}" for m, kw, name in OPTION_CASES]


@pytest.mark.parametrize("method,options,name", OPTION_CASES, ids=OPTION_IDS)
def test_only_adapters_train_and_every_one_gets_a_gradient(method, options, name):
    model = adapted(method, name, **options)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == set(adapter_state_dict(model)) and trainable
    train_steps(model, name, steps=2)  # after a step the zero-initialised paths no longer block the others
    model.zero_grad()
    output(model, name, inputs(name)).pow(2).mean().backward()
    no_grad = [n for n, p in model.named_parameters() if p.requires_grad and (p.grad is None or not p.grad.any())]
    assert not no_grad
    frozen = [n for n, p in model.named_parameters() if not p.requires_grad and p.grad is not None]
    assert not frozen


def initial_deltas(model: nn.Module) -> dict[str, torch.Tensor]:
    """{target: max |Delta W|} over all sites at initialisation."""
    deltas = {}
    for _, projection in model.named_modules():
        if isinstance(projection, AdaptedProjection):
            for target, delta in projection.delta_weights():
                deltas[target.name] = max(deltas.get(target.name, 0.0), delta.abs().max().item())
    return deltas


@pytest.mark.parametrize("method,options,name", [c for c in OPTION_CASES if "init" not in c[1]], ids=str)
def test_every_method_starts_exactly_at_the_base_model(method, options, name):
    model = adapted(method, name, **options)
    assert initial_deltas(model) == {"q": 0.0, "v": 0.0}
    x = inputs(name)
    with torch.no_grad():
        assert torch.equal(output(model, name, x), output(base_model(name), name, x))  # bit for bit


@pytest.mark.parametrize("name", BACKBONES)
def test_hyra_paper_text_initialisation_moves_q_and_not_v(name):
    hyra = initial_deltas(adapted("hyra", name, init="paper_text", a_activation="sigmoid"))
    assert hyra["v"] == 0.0 and hyra["q"] > 1e-4  # zero W_{V,A}, W_{V,B,2}; Kaiming Q path


@pytest.mark.parametrize("method,name", CASES)
def test_merge_unmerge_save_load_and_peft_export(method, name, tmp_path):
    model = adapted(method, name, dropout=0.0 if name == "swin3d" else 0.1)  # Swin reads its weights: no dropout
    train_steps(model, name)
    model.eval()
    x = inputs(name)
    with torch.no_grad():
        reference = output(model, name, x)
        base_weights = {k: v.clone() for k, v in model.state_dict().items() if ".adapter." not in k}

        merge_adapters(model)
        assert (output(model, name, x) - reference).abs().max() <= 1e-5
        unmerge_adapters(model)
        for key, value in model.state_dict().items():
            if key in base_weights:
                assert torch.allclose(value, base_weights[key], atol=1e-6), key
        assert (output(model, name, x) - reference).abs().max() <= 1e-5

        save_adapters(model, tmp_path / "ours")
        loaded = load_adapters(base_model(name), tmp_path / "ours").eval()
        assert torch.equal(output(loaded, name, x), reference)  # bit-exact round trip

        export_peft_lora(model, tmp_path / "peft")
        exported = peft.PeftModel.from_pretrained(base_model(name), str(tmp_path / "peft")).eval()
        if name == "swin3d":  # peft adds LoRA in forward, but torchvision's Swin reads qkv.weight: merge to apply it
            exported = exported.merge_and_unload()
        assert (output(exported, name, x) - reference).abs().max() <= 1e-5

        merge_adapters(model, unload=True)
        assert not any(isinstance(m, (AdaptedProjection, FactorGenerator)) for m in model.modules())
        assert type(model).__name__ == type(base_model(name)).__name__
        assert (output(model, name, x) - reference).abs().max() <= 1e-5


@pytest.mark.parametrize("method", sorted(METHODS))
@pytest.mark.parametrize("name", ["gpt2", *VISION])
def test_fused_projection_key_rows_stay_untouched(method, name):
    model = adapted(method, name)
    train_steps(model, name)
    before = {
        path: p.base.weight.detach().clone() for path, p in model.named_modules() if isinstance(p, AdaptedProjection)
    }
    merge_adapters(model)
    for path, projection in model.named_modules():
        if isinstance(projection, AdaptedProjection):
            weight = projection.base.weight if name in VISION else projection.base.weight.T  # (3d, in)
            old = before[path] if name in VISION else before[path].T
            assert torch.equal(weight[WIDTH : 2 * WIDTH], old[WIDTH : 2 * WIDTH])  # K rows
            assert not torch.equal(weight[:WIDTH], old[:WIDTH])  # Q rows moved
            assert not torch.equal(weight[2 * WIDTH :], old[2 * WIDTH :])  # V rows moved


def test_factors_are_generated_once_per_forward_pass_per_layer(monkeypatch):
    calls = []
    original = FactorGenerator.factors

    def counting(self):
        calls.append(self._cache is None or not self._in_pass)
        return original(self)

    monkeypatch.setattr(FactorGenerator, "factors", counting)
    model = adapted("hyra", "llama")  # separate q_proj / v_proj read one generator per layer
    output(model, "llama", inputs("llama"))
    assert len(calls) == 4 and sum(calls) == 2  # 2 layers x (q, v) reads, 2 generations


def test_our_lora_equals_peft_lora_given_equal_factors():
    ours = adapted("lora", "llama")
    train_steps(ours, "llama")
    theirs = peft.get_peft_model(
        base_model("llama"), peft.LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"])
    )
    with torch.no_grad():
        for path, parts in lora_factors(ours).items():
            ((_, _, B, A),) = parts
            layer = theirs.base_model.model.get_submodule(path)
            layer.lora_A["default"].weight.copy_(A)
            layer.lora_B["default"].weight.copy_(B)
    x = inputs("llama")
    assert (output(ours.eval(), "llama", x) - output(theirs.eval(), "llama", x)).abs().max() <= 1e-6


@pytest.mark.parametrize("method", ["peft_lora", "dora", "vera", "prefix"])
def test_peft_baselines_through_the_same_interface(method):
    model = apply_adapters(base_model("llama"), method, targets=("q", "v"), rank=4, alpha=8)
    assert isinstance(model, peft.PeftModel)
    n, percent = count_trainable(model)
    assert n == sum(p.numel() for p in model.parameters() if p.requires_grad) and 0 < percent < 100
    out = model(input_ids=inputs("llama")).logits
    out.pow(2).mean().backward()


def test_float64_adapters():
    model = adapted("hyra", "vit").double()
    x = inputs("vit").double()
    train_steps(model, "vit", x=x)
    with torch.no_grad():
        reference = output(model, "vit", x)
        merge_adapters(model)
        assert reference.dtype == torch.float64
        assert (output(model, "vit", x) - reference).abs().max() <= 1e-12


def test_count_trainable_is_the_share_of_the_backbone():
    model = base_model("llama")
    total = sum(p.numel() for p in model.parameters())
    apply_adapters(model, "lora", targets=("q", "v"), rank=4)
    n, percent = count_trainable(model)
    assert n == 2 * 2 * 4 * (WIDTH + WIDTH)  # 2 layers x (q, v) x r (in + out)
    assert percent == pytest.approx(100 * n / total)


@pytest.mark.parametrize(
    "kwargs,field",
    [
        ({"method": "lorra"}, "method"),
        ({"method": "lora", "targets": ("q", "o")}, "targets"),
        ({"method": "lora", "targets": ()}, "targets"),
        ({"method": "lora", "rank": 0}, "rank"),
        ({"method": "lora", "rank": WIDTH + 1}, "rank"),
        ({"method": "lora", "alpha": 0}, "alpha"),
        ({"method": "lora", "dropout": 1.0}, "dropout"),
        ({"method": "hyra", "b_activation": "swish"}, "b_activation"),
        ({"method": "hyra", "hidden_dim": 0}, "hidden_dim"),
        ({"method": "hyra", "init": "paper"}, "init"),
        ({"method": "hyra", "init": "paper_text", "a_activation": "tanh"}, "init"),  # V would never train
        ({"method": "hyra", "a_activation": "swish"}, "a_activation"),
        ({"method": "replora", "activation": "swish"}, "activation"),
        ({"method": "replora", "hidden": 64}, "method_kwargs"),
        ({"method": "peft_lora", "targets": ("o",)}, "targets"),
    ],
)
def test_bad_input_names_the_field_and_leaves_the_model_untouched(kwargs, field):
    model = base_model("llama")
    before = copy.deepcopy(model.state_dict())
    with pytest.raises(ConfigError, match=f"'{field}'"):
        apply_adapters(model, **kwargs)
    assert model.state_dict().keys() == before.keys()
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert all(p.requires_grad for p in model.parameters())


def test_a_backbone_without_attention_projections_is_refused():
    with pytest.raises(ConfigError, match="'targets'.*no attention projection"):
        apply_adapters(nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2)), "lora")
    with pytest.raises(ConfigError, match="'method'"):
        apply_adapters(vit(), "prefix")


def test_mlp_targets_get_plain_lora_and_applying_twice_is_refused():
    model = apply_adapters(base_model("llama"), "hyra", targets=("q", "v", "up", "down"), rank=4)
    kinds = {
        type(m.adapter).__name__ for m in model.modules() if isinstance(getattr(m, "adapter", None), FactorGenerator)
    }
    assert kinds == {"HyRAFactors", "LoRAFactors"}
    with pytest.raises(ConfigError, match="'model'"):
        apply_adapters(model, "lora")


@pytest.mark.parametrize("name", BACKBONES)
def test_bottleneck_adapter_starts_at_the_base_trains_saves_and_refuses_to_merge(name, tmp_path):
    x = inputs(name)
    with torch.no_grad():
        reference = output(base_model(name), name, x)
    model = apply_adapters(base_model(name), "adapter", reduction_factor=4)
    with torch.no_grad():
        assert torch.equal(output(model, name, x), reference)  # zero up projection: the base model, bit for bit
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == set(adapter_state_dict(model)) and len(trainable) == 2 * 4  # 2 layers x down/up x W, b
    assert count_trainable(model)[0] == 2 * (WIDTH * 8 + 8 + 8 * WIDTH + WIDTH)  # width 32 -> 8 -> 32
    train_steps(model, name)
    model.zero_grad()
    output(model, name, x).pow(2).mean().backward()
    assert all(p.grad is not None and p.grad.any() for n, p in model.named_parameters() if n in trainable)
    model.eval()
    with torch.no_grad():
        trained = output(model, name, x)
        assert not torch.equal(trained, reference)
        save_adapters(model, tmp_path / "adapter")
        assert torch.equal(output(load_adapters(base_model(name), tmp_path / "adapter").eval(), name, x), trained)
    for refused in (merge_adapters, lambda m: export_peft_lora(m, tmp_path / "peft")):
        with pytest.raises(ConfigError, match="bottleneck adapters.*cannot|no weight of the base model can absorb"):
            refused(model)


@pytest.mark.parametrize(
    "options,field",
    [({"reduction_factor": 0}, "reduction_factor"), ({"non_linearity": "swish"}, "non_linearity"),
     ({"init": "houlsby"}, "init"), ({"bottleneck": 8}, "method_kwargs")],
)  # fmt: skip
def test_bottleneck_adapter_bad_options_name_the_field(options, field):
    model = base_model("vit")
    with pytest.raises(ConfigError, match=f"'{field}'"):
        apply_adapters(model, "adapter", **options)
    assert all(p.requires_grad for p in model.parameters())


def test_a_hierarchical_swin_gets_adapters_of_each_stage_width_and_refuses_dropout():
    torch.manual_seed(0)
    model = swin3d(depths=(1, 1), heads=(HEADS, HEADS)).eval()  # stages of width 32 and 64 (patch merging between)
    x = inputs("swin3d")
    with torch.no_grad():
        reference = output(model, "swin3d", x)
    lora = apply_adapters(copy.deepcopy(model), "lora", targets=("q", "v"), rank=4)
    assert count_trainable(lora)[0] == 2 * 4 * (32 + 32) + 2 * 4 * (64 + 64)  # Q and V of each stage's block
    with torch.no_grad():
        assert torch.equal(output(lora, "swin3d", x), reference)  # B = 0: the base model
    train_steps(lora, "swin3d")
    projection = lora.features[0][0].attn.qkv
    assert torch.equal(projection.weight[32:64], projection.base.weight[32:64])  # the K rows the attention reads
    assert not torch.equal(projection.weight[:32], projection.base.weight[:32])
    bottlenecked = apply_adapters(copy.deepcopy(model), "adapter", reduction_factor=4)
    widths = [m.down.in_features for m in bottlenecked.modules() if type(m).__name__ == "Bottleneck"]
    assert widths == [32, 64]
    assert count_trainable(bottlenecked)[0] == sum(w * (w // 4) * 2 + w // 4 + w for w in widths)
    with pytest.raises(ConfigError, match="'dropout' = 0.1 is not allowed: 0 for ShiftedWindowAttention3d"):
        apply_adapters(model, "lora", dropout=0.1)
    assert not any(isinstance(m, AdaptedProjection) for m in model.modules())  # refused before it was touched

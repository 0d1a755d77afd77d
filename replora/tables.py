"""RepLoRA's fine-tuning tables and sample-efficiency figure from saved runs, beside the printed numbers.

    python -m replora.tables [results_dir=results] [text_results_dir=records/replora] [out_dir=results/replora/tables]

Reads the runs of `replora.vision` (`<results_dir>/vision`), `replora.video` (`<results_dir>/video`),
`replora.vision_language` (`<results_dir>/vision_language`),
`replora.commonsense` (`<results_dir>/commonsense`) and
`replora.text_classification` (`<text_results_dir>/text_classification`; by default the CPU-scale records committed
in this repository) and writes, as csv + markdown: Table 3 (VTAB-1K), Table 2 (FGVC), Table 4 (video, with the
trainable parameters on the real Video Swin-B shapes beside the printed ones), Table 13, Tables 5, 6, 15 and 16
(VL-BART, with the trainable share on its real shapes), Table 1 (commonsense,
LLaMA-7B and 13B), Tables 11, 12 and 14 (linear vs non-linear), Table 10 and Figure 2 (FGVC sample efficiency),
and the CPU-scale text-classification table and figure. Every cell shows the paper's value and ours; a cell we have
not run says "not run", a baseline this repository does not implement (prefix tuning of a timm ViT) "n/i".
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from common.config import cli_config
from common.data.commonsense import TASKS
from common.data.vision import FGVC_DATASETS, VTAB_TASKS
from common.finetune import report, video
from common.finetune.methods import Adaptation
from common.finetune.report import PaperTable
from common.plotting import write_table
from replora import vision_language

PAPER = Path(__file__).parent / "paper_results"
VTAB, FGVC, COMMONSENSE = list(VTAB_TASKS), list(FGVC_DATASETS), list(TASKS)
VISION_ROWS = {"FFT": "full", "LoRA": "lora", "Adapter": "adapter", "Prefix": None, "RepLoRA": "replora"}
VIDEO = ["ssv2", "hmdb51"]
IMAGE_TEXT, VIDEO_TEXT = ["vqa", "gqa", "nlvr2", "caption"], ["tvqa", "how2qa", "tvc", "yc2c"]
VL_ROWS = {"FT": "full", "LoRA": "lora", "RepLoRA": "replora"}
VIDEO_METHODS = ["full", "lora", "adapter", "replora", "replora_linear"]
LINEAR_ROWS = {"LoRA": "lora", "RepLoRA (Linear)": "replora_linear", "RepLoRA (Non-linear)": "replora"}
LLAMA_ROWS = {"LoRA": "lora", "Prefix": "prefix", "Adapter": "adapter", "RepLoRA": "replora"}

# the CPU-scale text classification: the comparison, the activation choice and the literal-text ablations
TEXT_METHODS = ["lora", "lora_matched", "replora", "replora_linear", "hyra"]
TEXT_ABLATIONS = {  # name: (methods, fractions)
    "activations": (["replora_tanh", "replora_gelu", "hyra_tanh", "hyra_gelu"], [0.1]),
    "literal": (["replora_relu", "hyra_paper_text", "replora", "hyra", "lora"], [0.1]),
}

TABLES = {
    "vision": [
        PaperTable("table03_vtab1k", PAPER / "table03_vtab1k.csv", VISION_ROWS, VTAB),
        PaperTable("table02_fgvc", PAPER / "table02_fgvc.csv", VISION_ROWS, FGVC),
        PaperTable("table11_linear_vs_nonlinear_vtab1k", PAPER / "table11_linear_vs_nonlinear_vtab1k.csv",
                   LINEAR_ROWS, VTAB),
        PaperTable("table12_linear_vs_nonlinear_fgvc", PAPER / "table12_linear_vs_nonlinear_fgvc.csv",
                   LINEAR_ROWS, FGVC),
    ],
    "video": [
        PaperTable("table04_video", PAPER / "table04_video_action_recognition.csv", VISION_ROWS, VIDEO,
                   metric="Acc@1"),
        PaperTable("table13_linear_vs_nonlinear_video", PAPER / "table13_linear_vs_nonlinear_video.csv",
                   LINEAR_ROWS, VIDEO, metric="Acc@1"),
    ],
    # VL-BART: scores (accuracy, CIDEr) not accuracies; Tables 5 and 6 print a PPT that Sec. 6's formula cannot
    # give (above the average score / 100): ours is not computed
    "vision_language": [
        PaperTable("table05_image_text", PAPER / "table05_image_text_vlbart.csv", VL_ROWS, IMAGE_TEXT,
                   metric="score", ppt=False),
        PaperTable("table06_video_text", PAPER / "table06_video_text_vlbart.csv", VL_ROWS, VIDEO_TEXT,
                   metric="score", ppt=False),
        PaperTable("table15_linear_vs_nonlinear_image_text", PAPER / "table15_linear_vs_nonlinear_image_text.csv",
                   LINEAR_ROWS, IMAGE_TEXT, metric="score", ppt=False),
        PaperTable("table16_linear_vs_nonlinear_video_text", PAPER / "table16_linear_vs_nonlinear_video_text.csv",
                   LINEAR_ROWS, VIDEO_TEXT, metric="score", ppt=False),
    ],
    "commonsense": [
        PaperTable(f"table01_commonsense_{size}", PAPER / "table01_commonsense_llama.csv", LLAMA_ROWS, COMMONSENSE,
                   {"model": f"LLaMA-{size.upper()}"}, model_contains=size)
        for size in ("7b", "13b")
    ] + [
        PaperTable(f"table14_linear_vs_nonlinear_commonsense_{size}",
                   PAPER / "table14_linear_vs_nonlinear_commonsense.csv", LINEAR_ROWS, COMMONSENSE,
                   {"model": f"LLaMA-{size.upper()}"}, model_contains=size)
        for size in ("7b", "13b")
    ],
}  # fmt: skip


def video_parameters() -> pd.DataFrame:
    """Table 4's and 13's "#Params (M)" beside ours on the real Video Swin-B shapes (the meta device): the adapters
    alone and with each dataset's new head."""
    printed = pd.concat(
        pd.read_csv(PAPER / name)
        for name in ("table04_video_action_recognition.csv", "table13_linear_vs_nonlinear_video.csv")
    )
    printed = printed.drop_duplicates("method").set_index("method")["params_M"]
    names = {**{v: k for k, v in VISION_ROWS.items() if v}, "replora_linear": "RepLoRA (Linear)"}
    rows = {}
    for row in video.parameter_counts(VIDEO_METHODS, Adaptation(targets=["q", "v"], rank=8, alpha=8)):
        entry = rows.setdefault(
            row["method"], {"method": names[row["method"]], "paper_params_m": printed.get(names[row["method"]])}
        )
        entry["ours_adapters_m"] = row["adapter_params"] / 1e6
        entry[f"ours_with_{row['dataset']}_head_m"] = row["trainable_params"] / 1e6
    return pd.DataFrame(rows.values())


def vision_language_parameters() -> pd.DataFrame:
    """Tables 5's and 6's "#Params (%)" beside ours on VL-BART's real shapes (BART-base, rank 128 on Q and V, the
    visual embedding trained), for CLIP features of 2048 (VL-Adapter's ResNet-101 grids), 768 (ViT-B/32's grid, our
    extraction's default) and 512 dimensions (CLIP's joint embedding)."""
    names = {"full": "FT", "lora": "LoRA", "replora": "RepLoRA", "replora_linear": "RepLoRA (Linear)"}
    printed = {
        table: pd.read_csv(PAPER / f"{csv}.csv").drop_duplicates("method").set_index("method")["params_pct"]
        for table, csv in (("t5", "table05_image_text_vlbart"), ("t6", "table06_video_text_vlbart"))
    }
    adaptation = Adaptation(targets=["q", "v"], rank=128, alpha=128)
    rows = {}
    for dim in (2048, 768, 512):
        for row in vision_language.parameter_shares(list(names), adaptation, dim):
            name = names[row["method"]]
            entry = rows.setdefault(
                name, {"method": name, **{f"paper_{t}_pct": p.get(name) for t, p in printed.items()}}
            )
            entry[f"ours_pct_{dim}d"] = row["trainable_pct"]
    return pd.DataFrame(rows.values())


def write_video_parameters(path_stem: Path) -> None:
    for path in write_table(video_parameters(), path_stem, float_format="%.3f"):
        print(f"wrote {path}")


@dataclass
class TablesConfig:
    results_dir: str = "results"
    text_results_dir: str = "records/replora"
    out_dir: str = "results/replora/tables"


def main(cfg: TablesConfig) -> None:
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    report.write_paper_tables(TABLES, cfg.results_dir, out)
    write_video_parameters(out / "table04_video_params")
    for path in write_table(vision_language_parameters(), out / "table05_vl_params", float_format="%.3f"):
        print(f"wrote {path}")
    vision = report.collect(cfg.results_dir, "vision")
    report.write_sample_efficiency(
        vision, PAPER / "table10_sample_efficiency_fgvc.csv", ["lora", "replora"], FGVC,
        out / "table10_sample_efficiency_fgvc", "RepLoRA Figure 2: FGVC",
    )  # fmt: skip
    report.write_text_classification(cfg.text_results_dir, TEXT_METHODS, out)
    for name, (methods, fractions) in TEXT_ABLATIONS.items():
        report.write_text_grid(cfg.text_results_dir, methods, out / f"text_classification_minilm_{name}", fractions)
    print(f"tables and figures in {out}")


if __name__ == "__main__":
    main(cli_config(TablesConfig, description=__doc__))

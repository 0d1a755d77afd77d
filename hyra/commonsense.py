"""HyRA on LLaMA-7B/13B: commonsense reasoning (Table 3; Table 5 with up/down; Figure 2 sample efficiency).

    python -m hyra.commonsense --config hyra/configs/commonsense_llama7b.yaml data_root=/data/commonsense

The implementation is shared with RepLoRA (`common.finetune.commonsense`); see its docstring for the protocol.
"""

from common.experiment import register
from common.finetune.commonsense import Finetune


@register("hyra.commonsense")
class Commonsense(Finetune):
    """HyRA's LLaMA runs: the shared fine-tuning entry point under this paper's name and configs."""


if __name__ == "__main__":
    Commonsense.cli()

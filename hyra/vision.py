"""HyRA on ViT-B/16: VTAB-1K (Tables 1 and 4) and FGVC (Table 2).

    python -m hyra.vision --config hyra/configs/vtab.yaml data_root=/data/vtab-1k
    python -m hyra.vision --config hyra/configs/fgvc.yaml data_root=/data/fgvc

The implementation is shared with RepLoRA (`common.finetune.vision`); see its docstring for the protocol.
"""

from common.experiment import register
from common.finetune.vision import Finetune


@register("hyra.vision")
class Vision(Finetune):
    """HyRA's ViT-B/16 runs: the shared fine-tuning entry point under this paper's name and configs."""


if __name__ == "__main__":
    Vision.cli()

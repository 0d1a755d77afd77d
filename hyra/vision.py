"""HyRA on ViT-B/16: VTAB-1K (Tables 1 and 4) and FGVC (Table 2).

    python -m hyra.vision --config hyra/configs/vtab.yaml data_root=/data/vtab-1k
    python -m hyra.vision --config hyra/configs/fgvc.yaml data_root=/data/fgvc

The implementation is shared with RepLoRA (`common.finetune.vision`); see its docstring for the protocol.
"""

from common.config import cli_config
from common.finetune.vision import Config, Point, check_inputs, is_done, main, point_dir, run_point, sweep

__all__ = ["Config", "Point", "check_inputs", "is_done", "main", "point_dir", "run_point", "sweep"]

if __name__ == "__main__":
    main(cli_config(Config, description=__doc__))

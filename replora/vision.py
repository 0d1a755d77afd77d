"""RepLoRA on ViT-B/16: VTAB-1K (Table 3), FGVC (Table 2) and FGVC sample efficiency (Figure 2 / Table 10).

    python -m replora.vision --config replora/configs/vtab.yaml data_root=/data/vtab-1k
    python -m replora.vision --config replora/configs/fgvc_sample_efficiency.yaml data_root=/data/fgvc

The implementation is shared with HyRA (`common.finetune.vision`); see its docstring for the protocol.
"""

from common.config import cli_config
from common.finetune.vision import Config, Point, check_inputs, is_done, main, point_dir, run_point, sweep

__all__ = ["Config", "Point", "check_inputs", "is_done", "main", "point_dir", "run_point", "sweep"]

if __name__ == "__main__":
    main(cli_config(Config, description=__doc__))

"""RepLoRA on LLaMA-7B/13B: commonsense reasoning (Table 1, Table 8 settings; Table 14 linear vs non-linear).

    python -m replora.commonsense --config replora/configs/commonsense_llama7b.yaml data_root=/data/commonsense

The implementation is shared with HyRA (`common.finetune.commonsense`); see its docstring for the protocol.
"""

from common.config import cli_config
from common.finetune.commonsense import Config, Point, check_inputs, is_done, main, point_dir, run_point, sweep

__all__ = ["Config", "Point", "check_inputs", "is_done", "main", "point_dir", "run_point", "sweep"]

if __name__ == "__main__":
    main(cli_config(Config, description=__doc__))

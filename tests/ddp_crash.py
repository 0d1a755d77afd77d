"""An entry point whose processes all end right after training step $MOE_LENS_TEST_CRASH_AT, as a node failure
would end them (no signal, no checkpoint of that step): for the data-parallel resume tests.

    torchrun --nproc_per_node=2 -m tests.ddp_crash quadratic_gating.pretrain key=value ...
"""

import os
import runpy
import sys

from common.training import checkpoint

CRASH_AT = int(os.environ["MOE_LENS_TEST_CRASH_AT"])
step_done = checkpoint.Checkpointer.step_done


def crashing_step_done(self, step, state_fn):
    step_done(self, step, state_fn)
    if step == CRASH_AT:
        sys.stdout.flush()
        os._exit(3)


checkpoint.Checkpointer.step_done = crashing_step_done
module, sys.argv = sys.argv[1], sys.argv[1:]
runpy.run_module(module, run_name="__main__", alter_sys=True)

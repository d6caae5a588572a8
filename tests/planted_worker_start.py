"""A torch.compile backend whose module cannot be imported inside a sandbox worker.

The parent process imports it fine (so ``--backends`` validation passes), but every
sandbox worker dies while setting up: what a broken install or a spec that cannot cross
the process boundary looks like to a campaign.
"""

from __future__ import annotations

import os
import sys

if sys.argv and sys.argv[0].endswith(os.path.join("oracles", "sandbox.py")):
    raise ImportError("planted: this backend's module cannot be loaded in a sandbox worker")


def backend(gm, example_inputs):  # pragma: no cover - never reached in a worker
    return gm.forward

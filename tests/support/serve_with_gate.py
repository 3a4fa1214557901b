"""Run ``sentiment-serve`` with a file-controlled gate on inference (tests' live servers).

While the file named by SVC_TEST_GATE exists, every inference call touches the file
named by SVC_TEST_ENTERED and waits (at most 30 s); the real model then scores as usual.
This lets a test hold a request in flight deterministically, e.g. across a SIGTERM.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from service.cli import main
from service.model.loader import Bundle

GATE = Path(os.environ["SVC_TEST_GATE"])
ENTERED = Path(os.environ["SVC_TEST_ENTERED"])
_original = Bundle.run_groups


def _gated_run_groups(self, groups):
    if GATE.exists():
        ENTERED.touch()
        deadline = time.monotonic() + 30
        while GATE.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
    return _original(self, groups)


Bundle.run_groups = _gated_run_groups

if __name__ == "__main__":
    main(sys.argv[1:])

"""Run ``sentiment-serve`` with a file-controlled gate on inference (for test_cli.py).

While the file named by SVC_TEST_GATE exists, every inference call touches the file
named by SVC_TEST_ENTERED and waits (at most 30 s); the real model then scores as usual.
This lets a test hold a request in flight deterministically, e.g. across a SIGTERM.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from service.bundle import Bundle
from service.cli import main

GATE = Path(os.environ["SVC_TEST_GATE"])
ENTERED = Path(os.environ["SVC_TEST_ENTERED"])
_original = Bundle.score_ids


def _gated_score_ids(self, sequences):
    if GATE.exists():
        ENTERED.touch()
        deadline = time.monotonic() + 30
        while GATE.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
    return _original(self, sequences)


Bundle.score_ids = _gated_score_ids

if __name__ == "__main__":
    main(sys.argv[1:])

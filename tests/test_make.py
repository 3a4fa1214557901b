"""The Makefile: `make` alone lists every target with one line each."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_make_alone_lists_every_target():
    done = subprocess.run(["make", "-s"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    listed = re.findall(r"^  make (\S+) +\S", done.stdout, re.M)
    phony = (ROOT / "Makefile").read_text().split(".PHONY:")[1].split("\n")[0].split()
    assert sorted(listed) == sorted(phony)
    assert listed[:3] == ["help", "serve", "test"]  # the two set-up commands come first

"""Tests of unreadable files need a process that file modes apply to."""

from __future__ import annotations

import os
import tempfile

import pytest


def reads_unreadable_files() -> bool:
    """Whether this process ignores file modes (root, or CAP_DAC_OVERRIDE)."""
    with tempfile.NamedTemporaryFile() as f:
        os.chmod(f.name, 0)
        try:
            open(f.name).close()
        except PermissionError:
            return False
        return True


not_as_root = pytest.mark.skipif(reads_unreadable_files(), reason="root reads any file")

"""The README stays true about what can be configured."""

from __future__ import annotations

from pathlib import Path

from service.settings import Settings

README = Path(__file__).resolve().parents[1] / "README.md"


def test_every_setting_is_documented_in_the_readme():
    text = README.read_text(encoding="utf-8")
    missing = [
        f"SENTIMENT_{name.upper()}"
        for name in Settings.model_fields
        if f"`SENTIMENT_{name.upper()}`" not in text
    ]
    assert not missing, f"settings missing from the README's Configuration table: {missing}"

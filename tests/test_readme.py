"""The README stays true about what can be configured."""

from __future__ import annotations

from pathlib import Path

from service.settings import Settings

README = Path(__file__).resolve().parents[1] / "README.md"


def test_every_setting_is_documented_in_the_readme():
    # the Configuration table itself, not anywhere in the README (four settings were only
    # in the speed-ups table while the README said this one lists them all)
    text = README.read_text(encoding="utf-8").split("\n## Configuration\n", 1)[1]
    text = text.split("\n## ", 1)[0]
    missing = [
        f"SENTIMENT_{name.upper()}"
        for name in Settings.model_fields
        if f"`SENTIMENT_{name.upper()}`" not in text
    ]
    assert not missing, f"settings missing from the README's Configuration table: {missing}"

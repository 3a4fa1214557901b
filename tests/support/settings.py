"""How the tests see ``sentiment-serve`` refuse its settings."""

from __future__ import annotations

import pytest

import service.cli


def refused(monkeypatch: pytest.MonkeyPatch, capsys, **env: str) -> str:
    """The one line ``sentiment-serve`` prints when it exits 2 for ``env``."""
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(SystemExit) as exit_info:
        service.cli.checked_settings({})
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and len(err.splitlines()) == 1, err
    return err

"""Which load generator a benchmark uses when none is named."""

from __future__ import annotations

import shutil

import pytest

from bench import loadgen


def test_wrk_is_picked_where_installed(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setattr(loadgen.shutil, "which", lambda name: f"/usr/bin/{name}")
    assert loadgen.pick_generator(None) == "wrk"
    assert loadgen.pick_generator("auto") == "wrk"
    assert capsys.readouterr().err == ""


def test_the_async_fallback_says_what_it_measures(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setattr(loadgen.shutil, "which", lambda name: None)
    loadgen._warn_async_fallback.cache_clear()
    assert loadgen.pick_generator("auto") == "async"
    assert loadgen.pick_generator(None) == "async"
    warning = capsys.readouterr().err
    assert "wrk not found" in warning and "not the server" in warning
    assert warning.count("wrk not found") == 1  # once per process, not once per phase


def test_a_named_generator_is_kept(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setattr(loadgen.shutil, "which", lambda name: None)
    assert loadgen.pick_generator("wrk") == "wrk"
    assert loadgen.pick_generator("async") == "async"
    assert capsys.readouterr().err == ""


def test_the_real_lookup_agrees_with_the_path() -> None:
    expected = "wrk" if shutil.which("wrk") else "async"
    assert loadgen.pick_generator(None) == expected

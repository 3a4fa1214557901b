"""Settings that README's Configuration table says stop the service (exit 2, one line naming
the setting), and the values next to them that still start it."""

from __future__ import annotations

import pytest

import service.cli
from service.settings import PROJECT_ROOT, Settings, read_keys_file
from tests.support.permissions import not_as_root
from tests.support.settings import refused


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        # before: accepted, the service started not ready, reading <root>/../PROMOTED
        ("SENTIMENT_MODELS", "..", "SENTIMENT_MODELS: '..' is not a model name"),
        ("SENTIMENT_MODELS", "sentiment-lstm,.", "SENTIMENT_MODELS: '.' is not a model name"),
        ("SENTIMENT_MODEL_NAME", "..", "SENTIMENT_MODEL_NAME: '..' is not a model name"),
        ("SENTIMENT_MODEL_NAME", "a/b", "SENTIMENT_MODEL_NAME: 'a/b' is not a model name"),
        ("SENTIMENT_DEFAULT_MODEL", "../x", "SENTIMENT_DEFAULT_MODEL: '../x' is not a model"),
        # before: accepted as origins that no browser ever sends
        ("SENTIMENT_CORS_ORIGINS", '{"a":1}', "SENTIMENT_CORS_ORIGINS: '{\"a\":1}' is not an"),
        ("SENTIMENT_CORS_ORIGINS", "https://a.example/", "'https://a.example/' is not an origin"),
        ("SENTIMENT_CORS_ORIGINS", "a.example", "'a.example' is not an origin"),
        # before: timeouts that never fire
        ("SENTIMENT_MAX_WAIT_MS", "inf", "SENTIMENT_MAX_WAIT_MS: Input should be a finite number"),
        ("SENTIMENT_MAX_WAIT_MS", "1001", "SENTIMENT_MAX_WAIT_MS: Input should be less than or"),
        ("SENTIMENT_REQUEST_TIMEOUT_S", "1e12", "SENTIMENT_REQUEST_TIMEOUT_S: Input should be"),
        (
            "SENTIMENT_REQUEST_TIMEOUT_S",
            "nan",
            "SENTIMENT_REQUEST_TIMEOUT_S: Input should be a finite",
        ),
        ("SENTIMENT_DRAIN_TIMEOUT_S", "inf", "SENTIMENT_DRAIN_TIMEOUT_S: Input should be"),
        ("SENTIMENT_BODY_TIMEOUT_S", "inf", "SENTIMENT_BODY_TIMEOUT_S: Input should be"),
        ("SENTIMENT_BODY_TIMEOUT_S", "3601", "SENTIMENT_BODY_TIMEOUT_S: Input should be"),
    ],
)
def test_an_unusable_value_stops_at_once(monkeypatch, capsys, key, value, message):
    assert message in refused(monkeypatch, capsys, **{key: value})


def test_the_values_beside_them_start(monkeypatch):
    env = {
        "SENTIMENT_MODELS": "sentiment-lstm,sentiment-general",
        "SENTIMENT_CORS_ORIGINS": "http://localhost:8080, https://[::1]:8443,https://A.example",
        "SENTIMENT_MAX_WAIT_MS": "1000",
        "SENTIMENT_REQUEST_TIMEOUT_S": "3600",
        "SENTIMENT_DRAIN_TIMEOUT_S": "3600",
        "SENTIMENT_BODY_TIMEOUT_S": "0",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = service.cli.checked_settings({})
    assert settings.cors_origins == [
        "http://localhost:8080",
        "https://[::1]:8443",
        "https://A.example",
    ]
    assert (settings.max_wait_ms, settings.request_timeout_s) == (1000, 3600)
    assert Settings(cors_origins=["*"]).cors_origins == ["*"]  # any origin, as Starlette reads it


def test_empty_paths_and_names_mean_unset(monkeypatch):
    """As compose files pass a variable that is set but empty; SENTIMENT_MODELS_ROOT= was
    the current directory before."""
    for key in ("SENTIMENT_MODELS_ROOT", "SENTIMENT_MODEL_DIR", "SENTIMENT_MODEL_NAME"):
        monkeypatch.setenv(key, " ")
    settings = service.cli.checked_settings({})
    assert settings.models_root == PROJECT_ROOT / "models"
    assert settings.model_dir is None and settings.model_name is None


def test_a_default_model_that_is_not_served_stops_with_model_name_too(monkeypatch, capsys):
    """Before, SENTIMENT_MODEL_NAME made SENTIMENT_DEFAULT_MODEL silently ignored."""
    env = {"SENTIMENT_MODEL_NAME": "sentiment-lstm", "SENTIMENT_DEFAULT_MODEL": "sentiment-lsmt"}
    err = refused(monkeypatch, capsys, **env)
    assert "SENTIMENT_DEFAULT_MODEL 'sentiment-lsmt' is not served (served: sentiment-lstm)" in err
    monkeypatch.setenv("SENTIMENT_DEFAULT_MODEL", "sentiment-lstm")
    assert service.cli.checked_settings({}).model_name == "sentiment-lstm"


def test_a_default_model_that_is_not_served_stops_with_model_dir_too(
    monkeypatch, capsys, bundle_dir, manifest
):
    env = {"SENTIMENT_MODEL_DIR": str(bundle_dir), "SENTIMENT_DEFAULT_MODEL": "sentiment-lsmt"}
    err = refused(monkeypatch, capsys, **env)
    assert f"'sentiment-lsmt' is not served (served: {manifest['name']})" in err
    monkeypatch.setenv("SENTIMENT_DEFAULT_MODEL", manifest["name"])
    assert service.cli.checked_settings({}).model_dir == bundle_dir


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\xff\xfe k\xe9y\n", "is not UTF-8 text"),  # before: a traceback, exit 1
        (b"", "holds no keys"),  # before: started, and every call got 401
        (b"# keys to come\n   # indented\n\n", "holds no keys"),
    ],
)
def test_a_keys_file_that_holds_no_usable_key_stops_at_once(
    monkeypatch, capsys, tmp_path, content, message
):
    file = tmp_path / "keys"
    file.write_bytes(content)
    err = refused(monkeypatch, capsys, SENTIMENT_API_KEYS_FILE=str(file))
    assert f"SENTIMENT_API_KEYS_FILE: {file} {message}" in err


@not_as_root
def test_an_unreadable_keys_file_stops_at_once(monkeypatch, capsys, tmp_path):
    """Before: started, every call got 401, and an ERROR was logged every second."""
    file = tmp_path / "keys"
    file.write_text("k-0123456789abcdef\n")
    file.chmod(0)
    err = refused(monkeypatch, capsys, SENTIMENT_API_KEYS_FILE=str(file))
    assert f"SENTIMENT_API_KEYS_FILE: {file} cannot be read (Permission denied)" in err


def test_a_keys_file_with_a_bom_and_comments_starts(monkeypatch, tmp_path):
    file = tmp_path / "keys"
    file.write_bytes("\ufeff# clients\nk-0123456789abcdef\n".encode())
    monkeypatch.setenv("SENTIMENT_API_KEYS_FILE", str(file))
    assert service.cli.checked_settings({}).api_keys_file == file
    assert read_keys_file(file) == ["k-0123456789abcdef"]  # (a BOM is not part of a line)

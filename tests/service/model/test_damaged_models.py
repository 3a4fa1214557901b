"""One damaged model at startup: that model is not ready with a one-line reason, the
other committed model serves. The models are copies of the committed bundles."""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from sentiment_core.bundle import PROMOTED_FILE, sha256_file
from service.cli import checked_settings
from tests.support.bundles import promote_by_hand
from tests.support.permissions import not_as_root
from tests.support.servers import PROJECT_ROOT, copy_bundle, make_settings, serve

COMMITTED = PROJECT_ROOT / "models"
GENERAL, LSTM = "sentiment-general", "sentiment-lstm"


def committed_version(name: str) -> str:
    return (COMMITTED / name / PROMOTED_FILE).read_text().strip()


@pytest.fixture
def models_root(tmp_path) -> Path:
    """Copies of both committed models, each promoted at its committed version."""
    root = tmp_path / "models"
    for name in (GENERAL, LSTM):
        version = committed_version(name)
        copy_bundle(COMMITTED / name / version, root / name / version)
        promote_by_hand(root, name, version)
    return root


def lstm_bundle(root: Path) -> Path:
    return root / LSTM / committed_version(LSTM)


def replace_and_rehash(bundle: Path, file: str, content: bytes) -> None:
    """Damage that hashes cannot catch: the manifest is updated to the new content."""
    (bundle / file).write_bytes(content)
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["files"][file] = {"sha256": sha256_file(bundle / file), "bytes": len(content)}
    (bundle / "manifest.json").write_text(json.dumps(manifest))


async def lstm_refused_general_serves(settings) -> str:
    """Start on ``settings``: sentiment-lstm must be not ready, sentiment-general must
    answer. Returns sentiment-lstm's reason."""
    async with serve(settings) as (_, client):
        ready = await client.get("/health/ready")
        assert ready.status_code == 503, ready.text
        assert [m["name"] for m in ready.json()["models"]] == [GENERAL]
        general = await client.post("/predict", json={"text": "A wonderful film."})
        assert general.status_code == 200 and general.json()["model"]["name"] == GENERAL
        lstm = await client.post("/predict", json={"text": "A wonderful film.", "model": LSTM})
        assert lstm.status_code == 503 and lstm.json()["error"]["code"] == "not_ready"
        listed = {m["name"]: m for m in (await client.get("/models")).json()["models"]}
        reason = listed[LSTM]["reason"]
        assert listed[LSTM]["status"] == "not_ready" and "\n" not in reason
        assert f"{LSTM}: {reason}" in ready.json()["reason"]
        return reason


def pointer_not_utf8(root: Path) -> None:
    (root / LSTM / PROMOTED_FILE).write_bytes(b"\xff\xfen2\n")


def tokenizer_without_model(root: Path) -> None:
    replace_and_rehash(lstm_bundle(root), "tokenizer.json", b'{"version": "1.0"}')


def tokenizer_not_json(root: Path) -> None:
    replace_and_rehash(lstm_bundle(root), "tokenizer.json", b'{"version": "1.0", ')


def model_cut_short(root: Path) -> None:
    model = lstm_bundle(root) / "model.onnx"
    replace_and_rehash(model.parent, "model.onnx", model.read_bytes()[:100_000])


def pointer_name_too_long(root: Path) -> None:
    (root / LSTM / PROMOTED_FILE).write_text("n" * 300 + "\n")


def general_in_lstm_folder(root: Path) -> None:
    shutil.rmtree(root / LSTM)
    version = committed_version(GENERAL)
    copy_bundle(COMMITTED / GENERAL / version, root / LSTM / "n2")
    promote_by_hand(root, LSTM, "n2")


DAMAGE: dict[str, tuple[Callable[[Path], None], str]] = {
    "PROMOTED not UTF-8": (pointer_not_utf8, "not UTF-8 text"),
    "tokenizer.json without a model, re-hashed": (tokenizer_without_model, "unreadable"),
    "tokenizer.json not JSON, re-hashed": (tokenizer_not_json, "unreadable"),
    "model.onnx cut short, re-hashed": (model_cut_short, "onnxruntime cannot load it"),
    "PROMOTED names a too-long version": (pointer_name_too_long, "File name too long"),
    "sentiment-general's bundle in sentiment-lstm/": (
        general_in_lstm_folder,
        f"is model '{GENERAL}'; this slot serves '{LSTM}'",
    ),
}


@pytest.mark.parametrize("damage, says", DAMAGE.values(), ids=DAMAGE.keys())
async def test_one_damaged_model_leaves_the_other_serving(models_root, damage, says):
    damage(models_root)
    reason = await lstm_refused_general_serves(make_settings(models_root=models_root))
    assert says in reason


async def test_an_unforeseen_failure_refuses_that_model_only(models_root, monkeypatch, caplog):
    """The last resort: a failure no check names still costs one model, not the service."""
    import service.model.runtime as runtime

    def load_bundle(path: Path, **options):
        if LSTM in str(path):
            raise RuntimeError("something nobody foresaw\nsecond line")
        return real_load_bundle(path, **options)

    real_load_bundle = runtime.load_bundle
    monkeypatch.setattr(runtime, "load_bundle", load_bundle)
    reason = await lstm_refused_general_serves(make_settings(models_root=models_root))
    assert reason.endswith("RuntimeError: something nobody foresaw")
    assert "Traceback" in caplog.text and "second line" in caplog.text


async def test_a_bom_before_the_promoted_version_is_ignored(models_root):
    pointer = models_root / LSTM / PROMOTED_FILE
    pointer.write_bytes(b"\xef\xbb\xbf" + pointer.read_bytes())
    async with serve(make_settings(models_root=models_root)) as (_, client):
        ready = await client.get("/health/ready")
        assert ready.status_code == 200, ready.text
        assert {m["name"] for m in ready.json()["models"]} == {GENERAL, LSTM}


@pytest.mark.parametrize("pointer", ["missing", "a directory"])
async def test_a_model_folder_without_a_pointer_is_named_in_a_warning(models_root, caplog, pointer):
    (models_root / LSTM / PROMOTED_FILE).unlink()
    if pointer == "a directory":
        (models_root / LSTM / PROMOTED_FILE).mkdir()
    with caplog.at_level(logging.WARNING, logger="service.model"):
        async with serve(make_settings(models_root=models_root)) as (_, client):
            assert (await client.get("/health/ready")).status_code == 200
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and r.model == LSTM]
    assert len(warnings) == 1
    assert f"sentiment-promote {LSTM} VERSION" in warnings[0].getMessage()
    assert warnings[0].folder == str(models_root / LSTM)


async def test_no_warning_for_a_model_left_out_on_purpose(models_root, caplog):
    (models_root / LSTM / PROMOTED_FILE).unlink()
    async with serve(make_settings(models_root=models_root, models=[GENERAL])) as (_, client):
        assert (await client.get("/health/ready")).status_code == 200
    assert "no PROMOTED" not in caplog.text


# -- permissions (root reads everything, so these run as an ordinary user only) -------------
@not_as_root
@pytest.mark.parametrize("what", ["version folder", "PROMOTED", "model folder"])
async def test_an_unreadable_model_is_refused_alone(models_root, what):
    target = {
        "version folder": lstm_bundle(models_root),
        "PROMOTED": models_root / LSTM / PROMOTED_FILE,
        "model folder": models_root / LSTM,
    }[what]
    target.chmod(0)
    try:
        reason = await lstm_refused_general_serves(make_settings(models_root=models_root))
    finally:
        target.chmod(0o755)
    assert "Permission denied" in reason


@not_as_root
async def test_an_unreadable_model_dir_is_not_ready(models_root):
    bundle = lstm_bundle(models_root)
    bundle.chmod(0)
    try:
        async with serve(make_settings(model_dir=bundle)) as (_, client):
            ready = await client.get("/health/ready")
    finally:
        bundle.chmod(0o755)
    assert ready.status_code == 503 and "Permission denied" in ready.json()["reason"]


@not_as_root
def test_an_unreadable_models_root_stops_the_service_with_one_line(models_root, capsys):
    models_root.chmod(0)
    try:
        with pytest.raises(SystemExit) as exit_:
            checked_settings({"models_root": models_root})
    finally:
        models_root.chmod(0o755)
    assert exit_.value.code == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "Permission denied" in error

"""Integrity and safe defaults.

- A tampered or incomplete bundle: the real server stays up, not ready, with a clear
  reason, and nothing of the bundle is loaded (no model info, every model route 503).
- No pickle anywhere in loading: the service's code imports no unpickling library, and
  loading a bundle deserializes only JSON (Python) and ONNX (onnxruntime); every other
  bundle file is only read to be hashed. Checked statically (AST) and at run time
  (an audit hook in a subprocess).
- CORS is off unless configured.
- No response body ever holds a traceback, even when the code under a route raises.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from service.encoding.python_path import PythonPathEncoder
from service.http.app import create_app
from tests.support.reliability import assert_no_traceback, metric_samples
from tests.support.servers import Server, copy_bundle, flip_byte, make_settings, serve

SERVICE_DIR = Path(__file__).resolve().parents[2] / "service"
CORE_DIR = SERVICE_DIR.parent / "sentiment_core"


# -- a bad bundle never serves (real server) --------------------------------------------------
def tamper_model(copy: Path, manifest: dict) -> str:
    name = manifest.get("model_file", "model.onnx")
    flip_byte(copy / name)
    return name


def drop_tokenizer(copy: Path, manifest: dict) -> str:
    name = manifest.get("tokenizer_file", "tokenizer.json")
    (copy / name).unlink()
    return name


@pytest.mark.parametrize(
    "breaks, says", [(tamper_model, "sha256"), (drop_tokenizer, "missing")], ids=["tampered model", "missing tokenizer"]
)  # fmt: skip
def test_server_with_a_bad_bundle_is_up_not_ready_and_loads_nothing(
    tmp_path, bundle_dir, manifest, breaks, says
):
    copy = copy_bundle(bundle_dir, tmp_path / "bundle")
    broken_file = breaks(copy, manifest)
    server = Server(tmp_path, SENTIMENT_MODEL_DIR=str(copy))
    try:
        server.start(wait_ready=False)
        with httpx.Client(base_url=server.base, timeout=30) as client:
            ready = client.get("/health/ready")
            assert ready.status_code == 503, ready.text
            reason = ready.json()["reason"]
            assert broken_file in reason and says in reason, reason
            for method, path in (("POST", "/predict"), ("POST", "/tokenize"), ("GET", "/model")):
                body = {"json": {"text": "a fine film"}} if method == "POST" else {}
                response = client.request(method, path, **body)
                assert_no_traceback(response.content, path)
                assert response.status_code == 503, (path, response.text)
                assert response.json()["error"]["code"] == "not_ready"
                assert broken_file in response.json()["error"]["message"]
                assert response.headers["retry-after"]
            metrics = client.get("/metrics").text
            assert [v for _, _, v in metric_samples(metrics, "sentiment_ready")] == [0.0]
            assert not metric_samples(metrics, "sentiment_model_info"), "a model was published"
            assert client.get("/health/live").status_code == 200
        assert server.process.poll() is None, "a bad bundle must not crash the server"
    finally:
        server.stop()
    refused = [
        json.loads(line)
        for line in server.output().splitlines()
        if line.startswith("{") and "model bundle refused" in line
    ]
    assert refused and broken_file in refused[0]["reason"], server.output()[-2000:]
    assert "model bundle loaded" not in server.output()


# -- no pickle --------------------------------------------------------------------------------------
UNSAFE_MODULES = {
    "pickle", "_pickle", "cPickle", "dill", "cloudpickle", "joblib", "shelve", "marshal",
    "torch", "tensorflow", "keras", "h5py", "yaml",
}  # fmt: skip
UNSAFE_CALLS = {"np.load", "numpy.load", "eval", "exec", "__import__"}
# PyYAML builds no Python object through these (service/ray_serve reads its serve.yaml):
# ``import yaml`` passes where every use of the module is one of them.
SAFE_YAML = {"yaml.safe_load", "yaml.safe_dump", "yaml.YAMLError"}


def only_safe_yaml(tree: ast.AST) -> bool:
    uses = [
        dotted(n)
        for n in ast.walk(tree)
        if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id == "yaml"
    ]
    return all(use in SAFE_YAML for use in uses)


def dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{dotted(node.value)}.{node.attr}"
    return ""


def test_service_code_imports_and_calls_nothing_that_unpickles():
    findings = []
    files = sorted(SERVICE_DIR.rglob("*.py")) + sorted(CORE_DIR.rglob("*.py"))
    assert len(files) >= 20, files
    for file in files:
        tree = ast.parse(file.read_text(), str(file))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
                if names == ["yaml"] and node.names[0].asname is None and only_safe_yaml(tree):
                    names = []
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                names = []
            findings += [
                f"{file.name}: import {n}" for n in names if n.split(".")[0] in UNSAFE_MODULES
            ]
            if isinstance(node, ast.Call) and dotted(node.func) in UNSAFE_CALLS:
                findings.append(f"{file.name}:{node.lineno}: {dotted(node.func)}()")
            if isinstance(node, ast.keyword) and node.arg == "allow_pickle":
                findings.append(f"{file.name}:{node.value.lineno}: allow_pickle=")
    assert not findings, findings


AUDIT_SCRIPT = r"""
import json, os, sys
from pathlib import Path

import onnxruntime as ort
import service.model.loader as bundle_module
import sentiment_core.tokenizer as tokenizer_module

bundle_dir = Path(sys.argv[1]).resolve()
events, active = [], [False]

def hook(event, args):
    if not active[0]:
        return
    if event.startswith("pickle.") or event == "shelve.open":
        events.append({"kind": "pickle", "event": event, "args": repr(args)[:200]})
    elif event == "open" and isinstance(args[0], (str, os.PathLike)):
        path = os.path.realpath(os.fspath(args[0]))
        if path.startswith(str(bundle_dir)):
            frame, hashing = sys._getframe(), False
            while frame is not None:
                hashing = hashing or frame.f_code.co_name == "sha256_file"
                frame = frame.f_back
            events.append({"kind": "open", "path": path, "hashing": hashing})

sys.addaudithook(hook)
original_session = ort.InferenceSession
def session(path, *args, **kwargs):
    if isinstance(path, bytes):  # a graph built in memory: say by which module
        path = "<bytes from " + sys._getframe(1).f_code.co_filename + ">"
    events.append({"kind": "onnxruntime", "path": str(path)})
    return original_session(path, *args, **kwargs)
ort.InferenceSession = session
original_read = tokenizer_module.read_tokenizer  # every tokenizer.json is read by it
def read_tokenizer(path, *args, **kwargs):
    events.append({"kind": "tokenizer", "path": str(path)})
    return original_read(path, *args, **kwargs)
tokenizer_module.read_tokenizer = read_tokenizer

active[0] = True
loaded = bundle_module.load_bundle(bundle_dir)
loaded.score_texts(["a fine film"])
active[0] = False
print("EVENTS=" + json.dumps(events))
"""


def test_loading_a_bundle_deserializes_only_json_and_onnx(bundle_dir, manifest):
    result = subprocess.run(
        [sys.executable, "-c", AUDIT_SCRIPT, str(bundle_dir)],
        capture_output=True, text=True, timeout=120, check=False,
        cwd=SERVICE_DIR.parent,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    line = next(li for li in result.stdout.splitlines() if li.startswith("EVENTS="))
    events = json.loads(line.removeprefix("EVENTS="))
    assert not [e for e in events if e["kind"] == "pickle"], events
    sessions = [e["path"] for e in events if e["kind"] == "onnxruntime"]
    tokenizers = [e["path"] for e in events if e["kind"] == "tokenizer"]
    files = [p for p in sessions if not p.startswith("<bytes")]
    assert files and all(p.endswith(".onnx") for p in files), sessions
    # The other sessions are the grouped copies of that verified graph (grouped.py).
    built = [p for p in sessions if p.startswith("<bytes")]
    assert all(p.endswith("service/inference/grouped.py>") for p in built), built
    assert tokenizers and all(p.endswith(".json") for p in tokenizers), tokenizers
    opens = [e for e in events if e["kind"] == "open"]
    parsed = {Path(e["path"]).name for e in opens if not e["hashing"]}
    # JSON, and ONNX protobuf (read by onnx to build the grouped graphs): no code, no pickle.
    assert parsed and all(name.endswith((".json", ".onnx")) for name in parsed), parsed
    hashed = {Path(e["path"]).name for e in opens if e["hashing"]}
    assert hashed == set(manifest["files"]), "every listed file is hashed"


# -- CORS ------------------------------------------------------------------------------------------
PREFLIGHT = {
    "access-control-request-method": "POST",
    "access-control-request-headers": "content-type",
}


async def test_cors_is_off_by_default():
    async with serve(make_settings()) as (_, client):
        origin = {"origin": "https://elsewhere.example"}
        for response in (
            await client.get("/health/live", headers=origin),
            await client.post("/predict", json={"text": "a fine film"}, headers=origin),
            await client.options("/predict", headers={**origin, **PREFLIGHT}),
        ):
            assert "access-control-allow-origin" not in response.headers, response.headers
            assert "access-control-allow-credentials" not in response.headers
        assert response.status_code == 405  # the preflight: no CORS handler at all


async def test_cors_on_when_configured_for_those_origins_only(monkeypatch):
    monkeypatch.setenv("SENTIMENT_CORS_ORIGINS", '["https://app.example"]')
    async with serve(make_settings()) as (_, client):
        allowed = {"origin": "https://app.example"}
        response = await client.post("/predict", json={"text": "a fine film"}, headers=allowed)
        assert response.status_code == 200
        assert response.headers["access-control-allow-origin"] == "https://app.example"
        preflight = await client.options("/predict", headers={**allowed, **PREFLIGHT})
        assert preflight.status_code == 200, preflight.text
        assert preflight.headers["access-control-allow-origin"] == "https://app.example"
        assert "POST" in preflight.headers["access-control-allow-methods"]

        other = {"origin": "https://elsewhere.example"}
        response = await client.post("/predict", json={"text": "a fine film"}, headers=other)
        assert "access-control-allow-origin" not in response.headers
        preflight = await client.options("/predict", headers={**other, **PREFLIGHT})
        assert preflight.status_code == 400
        assert "access-control-allow-origin" not in preflight.headers


# -- no tracebacks, even from a bug under a route -------------------------------------------------
async def test_a_bug_in_encoding_is_a_clean_500_without_a_traceback(monkeypatch):
    def broken(self, texts, with_tokens=True):
        raise ValueError("secret internals /etc/passwd")

    app = create_app(make_settings(), configure_logs=False)
    async with app.router.lifespan_context(app):
        # After the load and self-check.
        monkeypatch.setattr(PythonPathEncoder, "encode", broken)
        # Starlette re-raises after answering; the client must still get the answer.
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            for path in ("/predict", "/tokenize"):
                response = await client.post(path, json={"text": "a fine film"})
                assert response.status_code == 500, response.text
                assert response.json()["error"]["code"] == "internal_error"
                assert_no_traceback(response.content, path)
                assert "secret" not in response.text and "ValueError" not in response.text
            monkeypatch.undo()
            assert (await client.get("/health/ready")).status_code == 200
            assert (await client.post("/predict", json={"text": "fine"})).status_code == 200

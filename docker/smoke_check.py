"""The container smoke test's checks (docker/smoke-test.sh), run on the host with the
repository's venv: what the containers answer against what this repository's own code
says for the same bundles.

    smoke_check.py promoted MODELS_DIR          # "name version" of every promoted model
    smoke_check.py serve BASE_URL MODELS_DIR    # every promoted model, served, answers right
    smoke_check.py bundle BUNDLE_DIR [--owner UID] [--promoted]   # a newly trained bundle

Every model that ``MODELS_DIR/<name>/PROMOTED`` names must be served, at that version, and
answer ``/predict`` and ``/tokenize`` (with ``"model": name``) as the manifest's reference
outputs and the repository's ``TextEncoder`` and app (in-process) say.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's code, whichever venv runs it

import numpy as np  # noqa: E402

from sentiment_core.bundle import (  # noqa: E402
    PARTIAL_SUFFIX,
    PROMOTED_FILE,
    promoted_bundle,
    promoted_models,
    verify_files,
)
from sentiment_core.encoder import TextEncoder, pad_batch  # noqa: E402
from sentiment_core.manifest import BundleError, Manifest, read_manifest  # noqa: E402

TOL = 1e-5


class CheckFailed(Exception):
    pass


def check(cond: object, msg: str) -> None:
    if not cond:
        raise CheckFailed(msg)


def http(method: str, url: str, body: object = None) -> tuple[int, object]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            raw = r.read()
            if r.headers.get_content_type() == "application/json":
                return r.status, json.loads(raw)
            return r.status, raw.decode()
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            return e.code, json.loads(raw)
        except ValueError:
            return e.code, raw.decode(errors="replace")


def encoder_for(bundle: Path, manifest: Manifest) -> TextEncoder:
    inp = manifest.input
    return TextEncoder.from_file(bundle / manifest.tokenizer_file, inp.max_length, inp.truncation)


def expected_predictions(manifest: Manifest) -> list[dict]:
    """label, score and probabilities of each reference text, from the manifest alone."""
    outputs = np.array([r.outputs() for r in manifest.reference], dtype=np.float64)
    probabilities = manifest.probabilities(outputs)
    scores = manifest.scores(outputs)
    predicted = manifest.predicted(outputs)
    return [
        {
            "label": manifest.labels[int(k)],
            "score": float(s),
            "probabilities": dict(zip(manifest.labels, map(float, p), strict=True)),
            "margin": _margin(manifest, o),
        }
        for o, p, s, k in zip(outputs, probabilities, scores, predicted, strict=True)
    ]


def _margin(manifest: Manifest, row: np.ndarray) -> float:
    """How far the output is from changing its label (a label is checked only beyond TOL)."""
    if manifest.decision.rule == "threshold":
        return abs(float(row[0]) - manifest.decision.threshold)
    top = np.sort(row)[::-1]
    return float(top[0] - top[1])


def check_predictions(where: str, got: list[dict], want: list[dict]) -> float:
    check(len(got) == len(want), f"{where}: {len(got)} predictions for {len(want)} texts")
    worst = 0.0
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        diff = abs(g["score"] - w["score"])
        worst = max(worst, diff)
        check(diff <= TOL, f"{where}[{i}]: score {g['score']} != reference {w['score']}")
        check(
            set(g["probabilities"]) == set(w["probabilities"]),
            f"{where}[{i}]: probabilities for {sorted(g['probabilities'])}, "
            f"the bundle's labels are {sorted(w['probabilities'])}",
        )
        for label, p in w["probabilities"].items():
            check(abs(g["probabilities"][label] - p) <= TOL, f"{where}[{i}]: P({label}) differs")
        if w["margin"] > TOL:
            check(g["label"] == w["label"], f"{where}[{i}]: label {g['label']} != {w['label']}")
    return worst


def check_model(base: str, bundle: Path, manifest: Manifest) -> tuple[dict, dict]:
    """One served model against its bundle; returns its /predict and /tokenize answers."""
    name, texts = manifest.name, [r.text for r in manifest.reference]
    ref = {"name": name, "version": manifest.version}
    status, pred = http("POST", base + "/predict", {"texts": texts, "model": name})
    check(status == 200, f"POST /predict model={name}: {status} {pred}")
    check(pred["model"] == ref, f"/predict answered as {pred['model']}, not {ref}")
    worst = check_predictions(
        f"{name} /predict", pred["predictions"], expected_predictions(manifest)
    )
    status, one = http("POST", base + "/predict", {"text": texts[0], "model": name})
    check(status == 200, f"POST /predict one text model={name}: {status} {one}")
    check_predictions(
        f"{name} /predict text", one["predictions"], expected_predictions(manifest)[:1]
    )

    status, tok = http("POST", base + "/tokenize", {"texts": texts, "model": name})
    check(status == 200 and tok["model"] == ref, f"POST /tokenize model={name}: {status} {tok}")
    local = encoder_for(bundle, manifest).encode(texts)
    for text, res, enc, p in zip(texts, tok["results"], local, pred["predictions"], strict=True):
        what = f"{name} /tokenize {text[:50]!r}"
        check(res["ids"] == enc.ids and res["tokens"] == enc.tokens, f"{what}: ids/tokens differ")
        check(res["length"] == len(enc.ids) and res["truncated"] == enc.truncated, what)
        check(res["unknown_tokens"] == enc.unknown_tokens, f"{what}: unknown_tokens differ")
        check(p["tokens"] == len(enc.ids) and p["truncated"] == enc.truncated, f"{what} /predict")
    print(
        f"  {name} {manifest.version} ({len(manifest.labels)} labels, {manifest.output.kind}): "
        f"/predict equals the manifest's {len(texts)} reference outputs (max |diff| "
        f"{worst:.1e}); /tokenize equals TextEncoder"
    )
    return pred, tok


def served_bundles(models_dir: Path) -> dict[str, tuple[Path, Manifest]]:
    found = {}
    for name in promoted_models(models_dir):
        bundle = promoted_bundle(models_dir, name)
        manifest = read_manifest(bundle)
        verify_files(bundle, manifest)  # the copy served is the bundle committed
        found[name] = (bundle, manifest)
    check(found, f"no promoted model under {models_dir} (<name>/{PROMOTED_FILE})")
    return found


def check_serving(base: str, models_dir: Path) -> None:
    from service.settings import DEFAULT_MODEL

    bundles = served_bundles(models_dir)
    names = sorted(bundles)
    default = DEFAULT_MODEL if DEFAULT_MODEL in names else names[0]
    for path in ("/health/live", "/health/ready"):
        status, body = http("GET", base + path)
        check(status == 200, f"GET {path}: {status} {body}")
    status, listed = http("GET", base + "/models")
    check(status == 200, f"GET /models: {status} {listed}")
    served = {m["name"]: m for m in listed["models"]}
    check(sorted(served) == names, f"GET /models lists {sorted(served)}, PROMOTED files {names}")
    check(listed["default"] == default, f"default model {listed['default']}, expected {default}")
    for name, (_, manifest) in bundles.items():
        m = served[name]
        check(m["status"] == "ready", f"{name} is {m['status']}: {m.get('reason')}")
        want = manifest.version
        check(m["version"] == want, f"{name} serves {m['version']}, PROMOTED names {want}")
        check(m["labels"] == manifest.labels, f"{name}: labels {m['labels']}")
    versions = ", ".join(f"{n} {served[n]['version']}" for n in names)
    print(f"GET /models: {versions}; default {default}")
    status, metrics = http("GET", base + "/metrics")
    check(status == 200 and "# TYPE" in metrics, f"GET /metrics: {status}")

    answers = {name: check_model(base, *bundles[name]) for name in names}
    texts = [r.text for r in bundles[default][1].reference]
    status, pred = http("POST", base + "/predict", {"texts": texts})
    check(
        status == 200 and pred == answers[default][0],
        f"/predict without 'model' is not answered by the default, {default}: {str(pred)[:200]}",
    )
    status, err = http("POST", base + "/predict", {"text": "x", "model": "no-such-model"})
    check(status == 404 and all(n in err["error"]["message"] for n in names), f"{status} {err}")
    print(f"no 'model': the default ({default}) answers; an unknown model: 404 naming the served")
    compare_with_local_app(models_dir, bundles, answers)


def compare_with_local_app(models_dir: Path, bundles: dict, answers: dict) -> None:
    """The same requests through this repository's app in-process (fastapi's TestClient)."""
    from fastapi.testclient import TestClient

    from service.http.app import create_app
    from service.settings import DEFAULT_MODEL, Settings

    settings = Settings(  # explicit: the shell's SENTIMENT_* must not change what is compared
        models_root=models_dir,
        models=[],
        model_dir=None,
        model_name=None,
        default_model=DEFAULT_MODEL,
        api_keys=[],
        api_keys_file=None,
    )
    with TestClient(create_app(settings, configure_logs=False)) as client:
        for name, (pred, tok) in answers.items():
            texts = [r.text for r in bundles[name][1].reference]
            lp = client.post("/predict", json={"texts": texts, "model": name})
            lt = client.post("/tokenize", json={"texts": texts, "model": name})
            check(lp.status_code == 200 and lt.status_code == 200, f"local app: {lp.text[:200]}")
            lp = lp.json()
            check(lt.json() == tok, f"{name}: /tokenize differs from the local app's")
            check(lp["model"] == pred["model"], f"{name}: the local app serves {lp['model']}")
            drop = ("score", "probabilities")
            for a, b in zip(pred["predictions"], lp["predictions"], strict=True):
                check(abs(a["score"] - b["score"]) <= TOL, f"{name}: {a['score']} != {b['score']}")
                check(
                    {k: v for k, v in a.items() if k not in drop}
                    == {k: v for k, v in b.items() if k not in drop},
                    f"{name}: prediction fields differ from the local app's: {a} {b}",
                )
    print(f"container answers equal the local app's (TestClient) for {', '.join(answers)}")


def check_new_bundle(bundle: Path, owner: int | None, promoted: bool) -> None:
    """A freshly trained bundle: whole, hashed, reproducible here, owned by the host user."""
    import onnxruntime as ort

    manifest = read_manifest(bundle)
    verify_files(bundle, manifest)
    encoder = encoder_for(bundle, manifest)
    model = str(bundle / manifest.model_file)
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    for ref in manifest.reference:  # one at a time: no padding effects
        row = session.run(None, {input_name: pad_batch(encoder.encode_ids([ref.text]))})[0]
        got = np.asarray(row, dtype=np.float64).reshape(-1)
        check(np.allclose(got, ref.outputs(), rtol=0, atol=TOL), f"local ORT {got} != {ref}")
    leftovers = [p.name for p in bundle.parent.iterdir() if p.name.endswith(PARTIAL_SUFFIX)]
    check(not leftovers, f"unfinished bundles left behind: {leftovers}")
    if owner is not None:
        strangers = [p.name for p in [bundle, *bundle.iterdir()] if p.stat().st_uid != owner]
        check(not strangers, f"not owned by uid {owner} (the host user): {strangers}")
    if promoted:
        pointer = (bundle.parent / PROMOTED_FILE).read_text().strip()
        check(pointer == bundle.name, f"{bundle.parent}/{PROMOTED_FILE} names {pointer}")
    print(
        f"bundle {manifest.name}/{bundle.name}: {len(manifest.files)} files, sha256 match; local "
        f"onnxruntime reproduces its {len(manifest.reference)} reference outputs"
        + (f"; owned by uid {owner}" if owner is not None else "")
        + ("; PROMOTED names it" if promoted else "")
    )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="smoke_check.py")
    sub = parser.add_subparsers(dest="mode", required=True)
    sub.add_parser("promoted").add_argument("models_dir", type=Path)
    serve = sub.add_parser("serve")
    serve.add_argument("base_url")
    serve.add_argument("models_dir", type=Path)
    bundle = sub.add_parser("bundle")
    bundle.add_argument("bundle_dir", type=Path)
    bundle.add_argument("--owner", type=int)
    bundle.add_argument("--promoted", action="store_true")
    args = parser.parse_args(argv)
    try:
        if args.mode == "promoted":
            for name, (bundle_dir, _) in served_bundles(args.models_dir.resolve()).items():
                print(name, bundle_dir.name)
        elif args.mode == "serve":
            check_serving(args.base_url.rstrip("/"), args.models_dir.resolve())
        else:
            check_new_bundle(args.bundle_dir.resolve(), args.owner, args.promoted)
    except (CheckFailed, BundleError) as exc:
        print(f"CHECK FAILED: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

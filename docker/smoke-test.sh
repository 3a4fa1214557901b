#!/usr/bin/env bash
# Container smoke test: build both images, serve the committed model with compose, check
# its answers against the repository's own code, train a small model in the training
# container, serve that, and tear everything down (also on failure).
#
#   bash docker/smoke-test.sh
#
# Uses `docker compose` when a Docker engine answers, else podman + podman-compose (set up
# once by ../shared/tools/container-runtime-setup.sh, which this script runs if needed).
# Needs the repository's .venv (for the local reference answers) and the IMDB tarball.
#
# Environment (all optional):
#   SMOKE_PORT           host port for the api (default 8000; a free one if 8000 is busy)
#   SMOKE_PROJECT        compose project name (default sentiment-smoke)
#   SMOKE_READY_TIMEOUT  seconds to wait for /health/ready (default 120)
#   SMOKE_DATA_DIR       directory holding the tarball (default ../shared/data)
#   SMOKE_DATA_FILE      tarball name in it (default aclImdb_labeled.tar.gz)
#   SMOKE_TRAIN_ARGS     flags for the training run
#                        (default "--limit 300 --epochs 1 --parity-texts 200 --no-quantize")
#   SMOKE_SKIP_TRAIN=1   skip the training part
#   SMOKE_PYTHON         interpreter with the project installed (default .venv/bin/python)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

PROJECT=${SMOKE_PROJECT:-sentiment-smoke}
READY_TIMEOUT=${SMOKE_READY_TIMEOUT:-120}
DATA_DIR=${SMOKE_DATA_DIR:-$ROOT/../shared/data}
DATA_FILE=${SMOKE_DATA_FILE:-aclImdb_labeled.tar.gz}
TRAIN_ARGS=${SMOKE_TRAIN_ARGS:---limit 300 --epochs 1 --parity-texts 200 --no-quantize}
SKIP_TRAIN=${SMOKE_SKIP_TRAIN:-0}
PY=${SMOKE_PYTHON:-$ROOT/.venv/bin/python}
BASE_IMAGE=python:3.11-slim
API_IMAGE=sentiment-lstm-service:latest
TRAIN_IMAGE=sentiment-lstm-train:latest
SMOKE_VERSION=smoke-$(date -u +%Y%m%d-%H%M%S)

step() { printf '\n==> [%(%H:%M:%S)T] %s\n' -1 "$*"; }
FAIL_MSG=""
fail() { FAIL_MSG=$*; printf 'SMOKE TEST FAILED: %s\n' "$*" >&2; exit 1; }

[ -x "$PY" ] || fail "$PY not found: create the project venv first (pip install -e '.[dev]')"

# Settings that would change what compose does must come from this script alone.
unset SENTIMENT_MODEL_DIR SENTIMENT_MODELS_HOST_DIR SENTIMENT_DATA_DIR SENTIMENT_DATA_FILE \
      SENTIMENT_UID SENTIMENT_GID COMPOSE_FILE COMPOSE_PROFILES COMPOSE_PROJECT_NAME

# --- container runtime ------------------------------------------------------------------
if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1 \
    && docker compose version >/dev/null 2>&1; then
  ENGINE=docker
  COMPOSE=(docker compose)
else
  export PATH="/opt/podman-compose/bin:$PATH"
  if ! command -v podman >/dev/null 2>&1 || ! command -v podman-compose >/dev/null 2>&1 \
      || ! podman image exists "$BASE_IMAGE" 2>/dev/null; then
    step "setting up podman + podman-compose (one time)"
    bash "$ROOT/../shared/tools/container-runtime-setup.sh"
  fi
  ENGINE=podman
  COMPOSE=(podman-compose)
  # Keep HEALTHCHECK in the images (the OCI format has no field for it).
  export BUILDAH_FORMAT=docker
fi
compose() { "${COMPOSE[@]}" -p "$PROJECT" -f "$ROOT/docker-compose.yml" "$@"; }
echo "runtime: $ENGINE ($("${COMPOSE[@]}" version 2>/dev/null | tr '\n' ' '))"

# --- host port --------------------------------------------------------------------------
port_free() { "$PY" -c 'import socket,sys; s=socket.socket(); s.bind(("127.0.0.1", int(sys.argv[1])))' "$1" 2>/dev/null; }
if [ -n "${SMOKE_PORT:-}" ]; then
  PORT=$SMOKE_PORT
  port_free "$PORT" || fail "port $PORT is in use (SMOKE_PORT)"
elif port_free 8000; then
  PORT=8000
else
  PORT=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  echo "port 8000 is busy; using $PORT (set SMOKE_PORT to choose)"
fi
export SENTIMENT_HOST_PORT=$PORT
BASE_URL=http://127.0.0.1:$PORT

# --- cleanup, also on failure ------------------------------------------------------------
TMP=$(mktemp -d "${TMPDIR:-/tmp}/sentiment-smoke.XXXXXX")
cleanup() {
  local rc=$?
  set +e
  if [ "$rc" -ne 0 ]; then
    echo "--- api logs (last 60 lines) ---" >&2
    compose logs api 2>&1 | tail -n 60 >&2
  fi
  step "compose down"
  compose --profile train down -v --remove-orphans >/dev/null 2>&1 \
    || compose --profile train down >/dev/null 2>&1
  # Bundles written by the training container may belong to another (sub)uid.
  rm -rf "$TMP" 2>/dev/null || { [ "$ENGINE" = podman ] && podman unshare rm -rf "$TMP"; } \
    || echo "note: could not remove $TMP" >&2
  if [ "$rc" -eq 0 ]; then
    echo "SMOKE TEST PASSED"
  else
    echo "SMOKE TEST FAILED (exit $rc)${FAIL_MSG:+: $FAIL_MSG}" >&2
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- the committed bundle the api will serve ----------------------------------------------
BUNDLE=$("$PY" -c '
import sys
from pathlib import Path
base = Path("models/sentiment-lstm")
v = sorted(p for p in base.glob("*") if p.is_dir() and (p / "manifest.json").is_file()) if base.is_dir() else []
print(v[-1] if v else "")')
[ -n "$BUNDLE" ] || fail "no model bundle under models/sentiment-lstm/ (the api image serves the newest one)"
echo "committed bundle: $BUNDLE"

# --- the checks, in Python (host side, the repo's venv) ------------------------------------
cat >"$TMP/check.py" <<'PYEOF'
"""check.py serve BASE_URL BUNDLE_DIR  |  check.py bundle BUNDLE_DIR"""
import hashlib
import json
import sys
import urllib.error
import urllib.request
from pathlib import Path

TOL = 1e-5


def http(method, url, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            raw = r.read()
            return r.status, (json.loads(raw) if r.headers.get_content_type() == "application/json" else raw.decode())
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")


def check(cond, msg):
    if not cond:
        raise SystemExit(f"CHECK FAILED: {msg}")


def verify_bundle(bundle: Path) -> dict:
    check((bundle / "manifest.json").is_file(), f"{bundle}/manifest.json missing")
    check((bundle / "model.onnx").is_file(), f"{bundle}/model.onnx missing")
    manifest = json.loads((bundle / "manifest.json").read_text())
    files = manifest.get("files") or {}
    check("model.onnx" in files and "tokenizer.json" in files, "manifest 'files' lacks model.onnx/tokenizer.json")
    for name, info in files.items():
        p = bundle / name
        check(p.is_file(), f"{name} listed in the manifest but missing")
        digest = hashlib.sha256(p.read_bytes()).hexdigest()
        check(digest == info["sha256"], f"{name}: sha256 {digest} != manifest {info['sha256']}")
        check(p.stat().st_size == info["bytes"], f"{name}: size differs from the manifest")
    check(len(manifest.get("reference") or []) >= 3, "manifest has fewer than 3 reference texts")
    print(f"bundle {bundle.name}: {len(files)} files, sha256 all match")
    return manifest


def local_encoder(bundle: Path, manifest: dict):
    from sentiment_core.encoder import TextEncoder

    inp = manifest["input"]
    return TextEncoder.from_file(bundle / "tokenizer.json", inp["max_length"], inp["truncation"])


def check_bundle_scores(bundle: Path, manifest: dict):
    """The bundle reproduces its own reference scores with this repo's onnxruntime + tokenizer."""
    import numpy as np
    import onnxruntime as ort

    from sentiment_core.encoder import pad_batch

    refs = manifest["reference"]
    enc = local_encoder(bundle, manifest)
    sess = ort.InferenceSession(str(bundle / "model.onnx"), providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    for ref in refs:  # one at a time: no padding effects
        ids = enc.encode_ids([ref["text"]])
        out = sess.run(None, {name: pad_batch(ids)})[0]
        score = float(np.asarray(out).reshape(-1)[0])
        check(abs(score - ref["score"]) <= TOL, f"local ORT score {score} != manifest {ref['score']}")
    print(f"local onnxruntime reproduces the {len(refs)} manifest reference scores (tol {TOL})")


def check_serving(base: str, bundle: Path):
    manifest = verify_bundle(bundle)
    refs = manifest["reference"]
    texts = [r["text"] for r in refs]
    threshold = float(manifest.get("decision", {}).get("threshold", manifest.get("threshold", 0.5)))

    for path in ("/health/live", "/health/ready"):
        status, body = http("GET", base + path)
        check(status == 200, f"GET {path}: {status} {body}")
    status, model = http("GET", base + "/model")
    check(status == 200, f"GET /model: {status} {model}")
    print(f"GET /model: {json.dumps(model)[:200]}")
    status, metrics = http("GET", base + "/metrics")
    check(status == 200 and isinstance(metrics, str) and "# TYPE" in metrics, f"GET /metrics: {status}")

    # /predict: several texts, and the single-text form
    status, pred = http("POST", base + "/predict", {"texts": texts})
    check(status == 200, f"POST /predict: {status} {pred}")
    check(pred["model"] == {"name": manifest["name"], "version": manifest["version"]},
          f"/predict model {pred['model']} is not the bundle {manifest['name']} {manifest['version']}")
    check(len(pred["predictions"]) == len(texts), "/predict: wrong number of predictions")
    worst = 0.0
    for ref, p in zip(refs, pred["predictions"]):
        diff = abs(p["score"] - ref["score"])
        worst = max(worst, diff)
        check(diff <= TOL, f"/predict score {p['score']} != manifest reference {ref['score']} for {ref['text'][:60]!r}")
        check(p["label"] == ("positive" if p["score"] >= threshold else "negative"), f"label {p['label']} vs score {p['score']}")
        check(abs(p["probabilities"]["positive"] - p["score"]) <= 1e-6, "probabilities.positive != score")
        check(abs(p["probabilities"]["negative"] + p["probabilities"]["positive"] - 1) <= 1e-6, "probabilities do not sum to 1")
    print(f"POST /predict: {len(texts)} texts, scores equal the manifest reference (max |diff| {worst:.2e})")
    status, one = http("POST", base + "/predict", {"text": texts[0]})
    check(status == 200 and len(one["predictions"]) == 1, f"POST /predict single text: {status} {one}")
    check(abs(one["predictions"][0]["score"] - refs[0]["score"]) <= TOL, "single-text /predict score differs")

    # /tokenize against the repo's TextEncoder
    status, tok = http("POST", base + "/tokenize", {"texts": texts})
    check(status == 200, f"POST /tokenize: {status} {tok}")
    enc = local_encoder(bundle, manifest)
    for text, res, local, p in zip(texts, tok["results"], enc.encode(texts), pred["predictions"]):
        check(res["ids"] == local.ids, f"/tokenize ids differ from the local TextEncoder for {text[:60]!r}")
        check(res["tokens"] == local.tokens, f"/tokenize tokens differ for {text[:60]!r}")
        check(res["length"] == len(local.ids), f"/tokenize length {res['length']} != {len(local.ids)}")
        check(res["truncated"] == local.truncated, "/tokenize truncated flag differs")
        check(res["unknown_tokens"] == local.unknown_tokens, "/tokenize unknown_tokens differs")
        check(p["tokens"] == len(local.ids) and p["truncated"] == local.truncated
              and p["unknown_tokens"] == local.unknown_tokens, "/predict token counts differ from local")
    n_trunc = sum(r["truncated"] for r in tok["results"])
    print(f"POST /tokenize: ids/tokens equal the local TextEncoder for all {len(texts)} texts ({n_trunc} truncated)")

    # The same requests through the repo's own app in-process (fastapi TestClient)
    try:
        from fastapi.testclient import TestClient

        from service.http.app import create_app
        from service.settings import Settings
    except ImportError as exc:
        print(f"local app comparison skipped: {exc}")
        return
    app = create_app(Settings(model_dir=bundle), configure_logs=False)
    with TestClient(app) as client:
        lp = client.post("/predict", json={"texts": texts})
        lt = client.post("/tokenize", json={"texts": texts})
    check(lp.status_code == 200 and lt.status_code == 200, f"local app: {lp.status_code} {lt.status_code}")
    lp, lt = lp.json(), lt.json()
    check(lp["model"] == pred["model"], "local app serves another model")
    check(lt == tok, "/tokenize answer differs from the local app's")
    worst = 0.0
    for a, b in zip(pred["predictions"], lp["predictions"]):
        worst = max(worst, abs(a["score"] - b["score"]))
        check(abs(a["score"] - b["score"]) <= TOL, f"container score {a['score']} != local app {b['score']}")
        check({k: v for k, v in a.items() if k not in ("score", "probabilities")}
              == {k: v for k, v in b.items() if k not in ("score", "probabilities")},
              "prediction fields differ from the local app's")
    print(f"container answers equal the local app's (TestClient; max score |diff| {worst:.2e})")


if __name__ == "__main__":
    sys.path.insert(0, str(Path.cwd()))
    mode = sys.argv[1]
    if mode == "serve":
        check_serving(sys.argv[2].rstrip("/"), Path(sys.argv[3]).resolve())
    elif mode == "bundle":
        b = Path(sys.argv[2]).resolve()
        m = verify_bundle(b)
        check_bundle_scores(b, m)
        leftovers = [p.name for p in b.parent.iterdir() if p.name.endswith(".partial")]
        check(not leftovers, f"unfinished bundles left behind: {leftovers}")
    else:
        raise SystemExit(f"unknown mode {mode}")
PYEOF

api_container() {
  "$ENGINE" ps -q --filter "label=com.docker.compose.project=$PROJECT" \
    --filter "label=com.docker.compose.service=api" | head -n 1
}

wait_ready() {  # poll /health/ready until 200, bounded; fail early if the container died
  local deadline=$((SECONDS + READY_TIMEOUT)) status
  while :; do
    status=$("$PY" -c 'import sys, urllib.request
try:
    print(urllib.request.urlopen(sys.argv[1], timeout=3).status)
except Exception as e:
    print(getattr(e, "code", 0))' "$BASE_URL/health/ready")
    if [ "$status" = 200 ]; then
      echo "ready after $((SECONDS + READY_TIMEOUT - deadline)) s"
      return 0
    fi
    if [ -z "$(api_container)" ]; then
      fail "the api container is not running"
    fi
    if ((SECONDS >= deadline)); then
      fail "/health/ready did not answer 200 within ${READY_TIMEOUT}s (last: $status)"
    fi
    sleep 2
  done
}

# --- 1. build --------------------------------------------------------------------------------
step "building $API_IMAGE (docker/Dockerfile)"
t0=$SECONDS
compose build api
API_BUILD_S=$((SECONDS - t0))
step "building $TRAIN_IMAGE (docker/Dockerfile.train)"
t0=$SECONDS
compose --profile train build train
TRAIN_BUILD_S=$((SECONDS - t0))

# --- 2. serve the committed model ---------------------------------------------------------
step "compose up -d (api on 127.0.0.1:$PORT)"
compose up -d
wait_ready
CID=$(api_container)
[ -n "$CID" ] || fail "no api container"

step "checking answers against the repository's code"
"$PY" "$TMP/check.py" serve "$BASE_URL" "$BUNDLE"

step "checking the container"
uid=$("$ENGINE" exec "$CID" id -u)
[ "$uid" != 0 ] || fail "exec in the api container runs as root"
pid1_uid=$("$ENGINE" exec "$CID" python -c \
  'print(next(l.split()[1] for l in open("/proc/1/status") if l.startswith("Uid:")))')
pid1_cmd=$("$ENGINE" exec "$CID" python -c \
  'print(open("/proc/1/cmdline").read().replace("\0", " ").strip())')
[ "$pid1_uid" != 0 ] || fail "the server process (PID 1) runs as root"
case "$pid1_cmd" in *sentiment-serve*) ;; *) fail "PID 1 is not the server: $pid1_cmd" ;; esac
echo "server is PID 1 ($pid1_cmd), uid $pid1_uid; exec uid $uid"
if "$ENGINE" exec "$CID" python -c "import tensorflow" >/dev/null 2>&1; then
  fail "tensorflow is importable in the serving image"
fi
"$ENGINE" exec "$CID" python -c "import onnxruntime, tokenizers, fastapi" \
  || fail "the serving stack does not import in the container"
if "$ENGINE" exec "$CID" sh -c 'command -v gcc || command -v cc' >/dev/null 2>&1; then
  fail "a C compiler is in the serving image"
fi
echo "no tensorflow, no compiler; onnxruntime/tokenizers/fastapi import"
if [ "$ENGINE" = podman ]; then
  podman healthcheck run "$CID" 2>/dev/null || fail "the container healthcheck fails"
  echo "healthcheck: healthy (podman healthcheck run)"
else
  for _ in $(seq 1 45); do
    health=$(docker inspect -f '{{.State.Health.Status}}' "$CID")
    [ "$health" = healthy ] && break
    sleep 2
  done
  [ "$health" = healthy ] || fail "container health is $health"
  echo "healthcheck: $health"
fi

# --- 3. train a small model in the training container ----------------------------------------
if [ "$SKIP_TRAIN" = 1 ]; then
  echo "training skipped (SMOKE_SKIP_TRAIN=1)"
else
  [ -f "$DATA_DIR/$DATA_FILE" ] || fail "dataset not found: $DATA_DIR/$DATA_FILE (SMOKE_DATA_DIR)"
  mkdir -p "$TMP/models"
  chmod 0777 "$TMP/models"  # the container writes as uid 1000
  step "training in the container: $TRAIN_ARGS --version $SMOKE_VERSION"
  t0=$SECONDS
  # shellcheck disable=SC2086  # TRAIN_ARGS is a list of flags
  SENTIMENT_DATA_DIR=$(cd "$DATA_DIR" && pwd) SENTIMENT_DATA_FILE=$DATA_FILE \
  SENTIMENT_MODELS_HOST_DIR=$TMP/models \
    compose --profile train run --rm -T train $TRAIN_ARGS --version "$SMOKE_VERSION"
  TRAIN_RUN_S=$((SECONDS - t0))
  NEW_BUNDLE=$TMP/models/sentiment-lstm/$SMOKE_VERSION
  step "checking the new bundle"
  "$PY" "$TMP/check.py" bundle "$NEW_BUNDLE"

  # --- 4. switch the api to the new version (the README's recipe) ----------------------------
  step "serving the new version: SENTIMENT_MODEL_DIR=/app/models/sentiment-lstm/$SMOKE_VERSION compose up -d api"
  SENTIMENT_MODELS_HOST_DIR=$TMP/models \
  SENTIMENT_MODEL_DIR=/app/models/sentiment-lstm/$SMOKE_VERSION \
    compose up -d api
  sleep 2
  wait_ready
  "$PY" "$TMP/check.py" serve "$BASE_URL" "$NEW_BUNDLE"
fi

# --- 5. sizes ------------------------------------------------------------------------------
step "image sizes (added over $BASE_IMAGE)"
base_bytes=$("$ENGINE" image inspect -f '{{.Size}}' "$BASE_IMAGE")
base_layers=$("$ENGINE" history -q "$BASE_IMAGE" | wc -l)
for img in "$API_IMAGE" "$TRAIN_IMAGE"; do
  bytes=$("$ENGINE" image inspect -f '{{.Size}}' "$img")
  echo "--- $img: $(( (bytes - base_bytes) / 1000000 )) MB over the base ($(( bytes / 1000000 )) MB in all); its layers:"
  # history lists the newest layer first; the base image's own layers are the last ones
  all=$("$ENGINE" history --format '{{.Size}}\t{{.CreatedBy}}' "$img")
  echo "$all" | head -n $(( $(echo "$all" | wc -l) - base_layers )) \
    | awk -F'\t' '$1 != "0B" && $1 != "0 B" {printf "  %10s  %.100s\n", $1, $2}'
done
echo "build times: api ${API_BUILD_S}s, train ${TRAIN_BUILD_S}s (with the layer cache as it was)"
[ "$SKIP_TRAIN" = 1 ] || echo "training run in the container: ${TRAIN_RUN_S}s"

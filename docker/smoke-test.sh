#!/usr/bin/env bash
# Container smoke test: the README's "Containers" recipes, run for real. Builds both
# images, serves every promoted model with compose and checks each one's answers against
# the repository's own code, trains a small model in the training container (as the host
# user, --promote --force), switches the running api to it with `compose restart api`,
# switches back with sentiment-promote, and tears everything down (also on failure).
#
#   bash docker/smoke-test.sh        # or: make containers
#
# Uses `docker compose` when a Docker engine answers, else podman + podman-compose (set up
# once by ../shared/tools/container-runtime-setup.sh, which this script runs if needed).
# The api and the training job use a copy of ./models (SENTIMENT_MODELS_HOST_DIR): the
# repository's models/ is never written. Needs the repository's .venv (for the reference
# answers: docker/smoke_check.py) and the IMDB tarball.
#
# Environment (all optional):
#   SMOKE_PORT           host port for the api (default 8000; a free one if 8000 is busy)
#   SMOKE_PROJECT        compose project name (default sentiment-smoke)
#   SMOKE_READY_TIMEOUT  seconds to wait for /health/ready (default 120)
#   SMOKE_MODELS_SRC     models directory to copy and serve (default ./models)
#   SMOKE_DATA_DIR       directory holding the tarball (default ../shared/data)
#   SMOKE_DATA_FILE      tarball name in it (default aclImdb_labeled.tar.gz)
#   SMOKE_TRAIN_ARGS     flags for the training run, before --promote --force
#                        (default "--limit 300 --epochs 1 --parity-texts 200 --no-quantize")
#   SMOKE_SKIP_TRAIN=1   skip training and the switch
#   SMOKE_PYTHON         interpreter with the project installed (default .venv/bin/python)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

PROJECT=${SMOKE_PROJECT:-sentiment-smoke}
READY_TIMEOUT=${SMOKE_READY_TIMEOUT:-120}
MODELS_SRC=${SMOKE_MODELS_SRC:-$ROOT/models}
DATA_DIR=${SMOKE_DATA_DIR:-$ROOT/../shared/data}
DATA_FILE=${SMOKE_DATA_FILE:-aclImdb_labeled.tar.gz}
TRAIN_ARGS=${SMOKE_TRAIN_ARGS:---limit 300 --epochs 1 --parity-texts 200 --no-quantize}
SKIP_TRAIN=${SMOKE_SKIP_TRAIN:-0}
PY=${SMOKE_PYTHON:-$ROOT/.venv/bin/python}
BASE_IMAGE=python:3.11-slim
API_IMAGE=sentiment-lstm-service:latest
TRAIN_IMAGE=sentiment-lstm-train:latest
TRAINED=sentiment-lstm  # the model name a run without --config trains

step() { printf '\n==> [%(%H:%M:%S)T] %s\n' -1 "$*"; }
FAIL_MSG=""
fail() { FAIL_MSG=$*; printf 'SMOKE TEST FAILED: %s\n' "$*" >&2; exit 1; }

[ -x "$PY" ] || fail "$PY not found: create the project venv first (pip install -e '.[dev]')"

# Settings that would change what compose does must come from this script alone.
unset SENTIMENT_MODEL_DIR SENTIMENT_MODELS SENTIMENT_MODEL_NAME SENTIMENT_DEFAULT_MODEL \
      SENTIMENT_API_KEYS SENTIMENT_MODELS_HOST_DIR SENTIMENT_DATA_DIR SENTIMENT_DATA_FILE \
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
  # Only if a bundle was written by another (sub)uid, which the checks below would report.
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

# --- a copy of the models: the api serves it, the training job writes to it -----------------
[ -d "$MODELS_SRC" ] || fail "no models directory at $MODELS_SRC"
MODELS=$TMP/models
mkdir "$MODELS"
cp -R "$MODELS_SRC/." "$MODELS/"
find "$MODELS" -name '*.partial' -prune -exec rm -rf {} +
chmod -R u+rwX,go+rX "$MODELS"  # the api's uid (10001) reads it
check() { "$PY" "$ROOT/docker/smoke_check.py" "$@"; }
PROMOTED=$(check promoted "$MODELS") || fail "the committed models: see above"
echo "promoted models (models/*/PROMOTED), copied to $MODELS:"
echo "$PROMOTED" | sed 's/^/  /'
OLD_VERSION=$(echo "$PROMOTED" | awk -v n="$TRAINED" '$1 == n {print $2}')

# What the README's recipe exports (with this test's port, models copy and data).
[ -d "$DATA_DIR" ] && DATA_DIR=$(cd "$DATA_DIR" && pwd)
export SENTIMENT_MODELS_HOST_DIR=$MODELS SENTIMENT_DATA_DIR=$DATA_DIR SENTIMENT_DATA_FILE=$DATA_FILE
export SENTIMENT_UID=$(id -u) SENTIMENT_GID=$(id -g)

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

served_version() {  # the version GET /models reports for model $1
  "$PY" -c 'import json, sys, urllib.request
models = json.load(urllib.request.urlopen(sys.argv[1] + "/models", timeout=10))["models"]
print(next((m["version"] for m in models if m["name"] == sys.argv[2]), ""))' "$BASE_URL" "$1"
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

# --- 2. serve the committed models (README: compose up -d) ------------------------------------
step "compose up -d (api on 127.0.0.1:$PORT, serving the copy of ./models)"
compose up -d
wait_ready
CID=$(api_container)
[ -n "$CID" ] || fail "no api container"

step "checking every promoted model's answers against the repository's code"
check serve "$BASE_URL" "$MODELS" || fail "the committed models' answers: see above"

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

# --- 3. train in the training container, as the host user -------------------------------------
if [ "$SKIP_TRAIN" = 1 ]; then
  echo "training skipped (SMOKE_SKIP_TRAIN=1)"
else
  [ -f "$DATA_DIR/$DATA_FILE" ] || fail "dataset not found: $DATA_DIR/$DATA_FILE (SMOKE_DATA_DIR)"
  [ -n "$OLD_VERSION" ] || fail "no promoted $TRAINED model to switch from"
  if [ "$SENTIMENT_UID" != 1000 ]; then
    step "training as uid 1000, who cannot write the models copy: a clear message, exit 2"
    set +e
    msg=$(SENTIMENT_UID=1000 SENTIMENT_GID=1000 \
      compose --profile train run --rm -T train --limit 10 2>&1)
    rc=$?
    set -e
    echo "$msg" | grep 'sentiment-train: error' || true
    [ "$rc" = 2 ] && [[ "$msg" == *"cannot write model bundles"*"SENTIMENT_UID=\$(id -u)"* ]] \
      || fail "an unwritable models directory: exit $rc, not 2 with the fix named: $msg"
  fi

  step "training: compose --profile train run --rm train $TRAIN_ARGS --promote --force (uid $SENTIMENT_UID)"
  t0=$SECONDS
  # shellcheck disable=SC2086  # TRAIN_ARGS is a list of flags
  compose --profile train run --rm -T train $TRAIN_ARGS --promote --force
  TRAIN_RUN_S=$((SECONDS - t0))
  NEW_VERSION=$(cat "$MODELS/$TRAINED/PROMOTED")
  [ "$NEW_VERSION" != "$OLD_VERSION" ] || fail "$TRAINED/PROMOTED still names $OLD_VERSION"
  step "checking the new bundle $TRAINED/$NEW_VERSION"
  check bundle "$MODELS/$TRAINED/$NEW_VERSION" --owner "$SENTIMENT_UID" --promoted \
    || fail "the new bundle: see above"

  # compose restart api, then $TRAINED must serve version $1 with the right answers. A stop
  # that takes more than 20 s (lame duck 5 s + closing 2 s, nothing in flight) prints the
  # api's shutdown lines: what it was waiting for.
  restart_serving() {
    local t0=$SECONDS
    compose restart api
    if [ $((SECONDS - t0)) -gt 20 ]; then
      echo "warning: compose restart api took $((SECONDS - t0)) s; the api's last shutdown:" >&2
      # (sed quits at the first match: the tac before it gets SIGPIPE, which pipefail would
      # turn into the script's exit status; this is a diagnostic, never a failure)
      { compose logs api 2>&1 | grep -v systemd | tac | sed '/shutting down/q' | tac >&2; } || true
    fi
    wait_ready
    [ "$(served_version "$TRAINED")" = "$1" ] \
      || fail "after restart the api serves $TRAINED $(served_version "$TRAINED"), not $1"
    check serve "$BASE_URL" "$MODELS" || fail "$2's answers: see above"
  }

  # --- 4. switch the running api to it (README: promote, then compose restart api) -----------
  step "compose restart api (serving $TRAINED $NEW_VERSION, promoted)"
  restart_serving "$NEW_VERSION" "the new model"

  # --- 5. and back (README: sentiment-promote in the training image, restart) ----------------
  step "back to $OLD_VERSION: compose --profile train run --rm --entrypoint sentiment-promote train $TRAINED $OLD_VERSION"
  compose --profile train run --rm -T --entrypoint sentiment-promote train "$TRAINED"
  compose --profile train run --rm -T --entrypoint sentiment-promote train "$TRAINED" "$OLD_VERSION"
  restart_serving "$OLD_VERSION" "the rolled-back model"
fi

# --- 6. sizes ------------------------------------------------------------------------------
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

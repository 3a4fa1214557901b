#!/usr/bin/env bash
# Installs Debian's chromium and chromium-driver for the browser tests (tests/browser/),
# only when either is missing: a no-op on a machine that has them. Called by `make test`.
# Needs root (or password-less sudo) and Debian's package archive; where neither is
# available it says so and carries on: the browser tests then fail with the same hint.
set -euo pipefail

if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
    exit 0
fi
if [ "$(id -u)" -eq 0 ]; then
    SUDO=()
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    SUDO=(sudo -n)
else
    echo "ensure_chromium: chromium/chromedriver missing and not root: the browser tests will fail" >&2
    exit 0
fi
if ! command -v apt-get >/dev/null; then
    echo "ensure_chromium: no apt-get here: install Chromium and chromedriver yourself" >&2
    exit 0
fi
echo "ensure_chromium: installing Debian's chromium and chromium-driver" >&2
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq
"${SUDO[@]}" apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
command -v chromium >/dev/null && command -v chromedriver >/dev/null

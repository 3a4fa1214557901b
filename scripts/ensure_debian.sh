#!/usr/bin/env bash
# Installs Debian packages when a command they provide is missing; a no-op where every
# command is there. `make test` calls it for Chromium and its driver (the browser tests),
# `make bench`, `bench-quick` and `bench-ray` for wrk (the load generator).
#
#   bash scripts/ensure_debian.sh "COMMAND ..." PACKAGE ...
#
# Needs root (or password-less sudo) and apt-get. Where either is missing it says so and
# exits 0: the browser tests then fail with the same hint, and the benchmarks fall back to
# their slower Python load generator and say so.
set -euo pipefail

[ $# -ge 2 ] || { echo "usage: $0 \"COMMAND ...\" PACKAGE ..." >&2; exit 2; }
read -r -a commands <<<"$1"
shift
missing=()
for command in "${commands[@]}"; do
    command -v "$command" >/dev/null || missing+=("$command")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ]; then
    SUDO=()
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    SUDO=(sudo -n)
else
    echo "ensure_debian: ${missing[*]} missing and not root: install $* yourself" >&2
    exit 0
fi
if ! command -v apt-get >/dev/null; then
    echo "ensure_debian: ${missing[*]} missing and no apt-get here: install $* yourself" >&2
    exit 0
fi
echo "ensure_debian: installing Debian's $* (${missing[*]} missing)" >&2
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq
"${SUDO[@]}" apt-get install -y -qq --no-install-recommends "$@" >/dev/null
for command in "${commands[@]}"; do
    command -v "$command" >/dev/null
done

#!/usr/bin/env bash
# Install axe-core (accessibility checks used by tests/browser/test_accessibility.py) from the npm
# registry into the gitignored .test-tools/ folder, only when it is missing.
#   scripts/install-axe.sh
set -euo pipefail

AXE_SPEC="axe-core@4.11"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PREFIX="$ROOT/.test-tools"
AXE_FILE="$PREFIX/node_modules/axe-core/axe.min.js"

[ -f "$AXE_FILE" ] && exit 0

if ! command -v npm >/dev/null 2>&1; then
    SUDO=()
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1; then
            SUDO=(sudo)
        else
            echo "install-axe: npm is missing and root (or sudo) is needed to install it" >&2
            exit 1
        fi
    fi
    echo "install-axe: installing Debian's npm package" >&2
    log="$(mktemp "${TMPDIR:-/tmp}/idp-install-npm.XXXXXX.log")"
    apt_env=(env DEBIAN_FRONTEND=noninteractive)
    if ! { "${SUDO[@]}" "${apt_env[@]}" apt-get update -q &&
           "${SUDO[@]}" "${apt_env[@]}" apt-get install -y -q --no-install-recommends \
               -o Dpkg::Use-Pty=0 npm; } >"$log" 2>&1; then
        echo "install-axe: apt-get failed; last lines of $log:" >&2
        tail -n 40 "$log" >&2
        exit 1
    fi
    rm -f "$log"
fi

echo "install-axe: installing $AXE_SPEC into .test-tools/" >&2
mkdir -p "$PREFIX"
npm install --prefix "$PREFIX" --no-audit --no-fund --no-save --loglevel=error "$AXE_SPEC"
if [ ! -f "$AXE_FILE" ]; then
    echo "install-axe: npm finished but $AXE_FILE is missing" >&2
    exit 1
fi

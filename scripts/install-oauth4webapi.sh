#!/usr/bin/env bash
# Install oauth4webapi (panva's strict OAuth 2.0 / OpenID Connect client library, used by the
# interoperability tests of tests/interop/test_oauth4webapi.py) from the npm registry into the
# gitignored .test-tools/interop/, only when that exact version is missing. Its own prefix, so
# npm never prunes axe-core from .test-tools/ (scripts/install-axe.sh, which also installs npm
# when it is missing: `make test-tools` runs that one first).
#   scripts/install-oauth4webapi.sh
set -euo pipefail

VERSION="3.8.9"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PREFIX="$ROOT/.test-tools/interop"
MANIFEST="$PREFIX/node_modules/oauth4webapi/package.json"

if [ -f "$MANIFEST" ] && grep -q "\"version\": \"$VERSION\"" "$MANIFEST"; then
    exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
    echo "install-oauth4webapi: npm is missing: run scripts/install-axe.sh (or make test-tools) first" >&2
    exit 1
fi

echo "install-oauth4webapi: installing oauth4webapi@$VERSION into .test-tools/interop/" >&2
mkdir -p "$PREFIX"
npm install --prefix "$PREFIX" --no-audit --no-fund --no-save --loglevel=error "oauth4webapi@$VERSION"
if ! grep -q "\"version\": \"$VERSION\"" "$MANIFEST" 2>/dev/null; then
    echo "install-oauth4webapi: npm finished but $MANIFEST is not version $VERSION" >&2
    exit 1
fi

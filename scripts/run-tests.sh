#!/usr/bin/env bash
# Run the pytest suite against a throwaway PostgreSQL + Redis (scripts/test-services.sh).
# Arguments go to pytest (default: tests). The services are always stopped afterwards,
# and the exit code is pytest's.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
SERVICES="$ROOT/scripts/test-services.sh"
PYTHON="${IDP_TEST_PYTHON:-$ROOT/.venv/bin/python}"

[ -x "$PYTHON" ] || { echo "run-tests: $PYTHON not found (run: make venv)" >&2; exit 1; }

PYTEST_PID=""

cleanup() {
    "$SERVICES" stop || echo "run-tests: warning: could not stop the test services" >&2
}

# On a signal: stop pytest too (when it runs in the background), then exit -> cleanup.
on_signal() {
    if [ -n "$PYTEST_PID" ] && kill -0 "$PYTEST_PID" 2>/dev/null; then
        kill -TERM "$PYTEST_PID" 2>/dev/null || true
        for _ in $(seq 100); do kill -0 "$PYTEST_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$PYTEST_PID" 2>/dev/null || true
    fi
    exit "$1"
}
trap cleanup EXIT
trap 'on_signal 130' INT
trap 'on_signal 143' TERM
trap 'on_signal 129' HUP

env_lines="$("$SERVICES" start)"
eval "$env_lines"
export IDP_TEST_DATABASE_URL IDP_TEST_REDIS_URL
export IDP_REQUIRE_SERVICES=1 # the services are up: tests needing them must not skip

[ $# -gt 0 ] || set -- tests

set +e
if [ -t 0 ]; then
    # Interactive: foreground, so Ctrl-C and --pdb work as usual.
    "$PYTHON" -m pytest "$@"
    rc=$?
else
    # Non-interactive (CI): background + wait, so a TERM to this script is handled at once.
    "$PYTHON" -m pytest "$@" </dev/null &
    PYTEST_PID=$!
    wait "$PYTEST_PID"
    rc=$?
    PYTEST_PID=""
fi
set -e
exit "$rc"

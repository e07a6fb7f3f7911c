#!/usr/bin/env bash
# Install the Debian packages the test suite and the app need, only when missing.
#   scripts/system-deps.sh              install what is missing (quiet when nothing is)
#   scripts/system-deps.sh --check      exit 1 and list what is missing, install nothing
#   scripts/system-deps.sh --demo [...] only what `make run` needs: xmlsec1 (python3-saml and the
#                                       MyGuichet/LuxTrust sandboxes sign and check SAML with it)
#                                       and the DejaVu fonts (letters and CGU PDFs)
set -euo pipefail

PACKAGES=(chromium redis-server postgresql xmlsec1 nginx fonts-dejavu-core)
if [ "${1:-}" = --demo ]; then
    PACKAGES=(xmlsec1 fonts-dejavu-core)
    shift
fi

is_installed() {
    [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null)" = installed ]
}

missing=()
for pkg in "${PACKAGES[@]}"; do
    is_installed "$pkg" || missing+=("$pkg")
done
# Files the tests rely on directly, whatever the package state says.
if [[ " ${PACKAGES[*]} " == *" chromium "* ]]; then
    [ -x /usr/bin/chromium ] || [[ " ${missing[*]} " == *" chromium "* ]] || missing+=(chromium)
    compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null \
        || [[ " ${missing[*]} " == *" postgresql "* ]] || missing+=(postgresql)
fi
command -v xmlsec1 >/dev/null 2>&1 || [[ " ${missing[*]} " == *" xmlsec1 "* ]] || missing+=(xmlsec1)

[ ${#missing[@]} -eq 0 ] && exit 0

if [ "${1:-}" = --check ]; then
    echo "system-deps: missing: ${missing[*]}" >&2
    exit 1
fi

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO=(sudo)
    else
        echo "system-deps: need root (or sudo) to install: ${missing[*]}" >&2
        exit 1
    fi
fi

echo "system-deps: installing ${missing[*]}" >&2
log="$(mktemp "${TMPDIR:-/tmp}/idp-system-deps.XXXXXX.log")"
apt_env=(env DEBIAN_FRONTEND=noninteractive)
if ! { "${SUDO[@]}" "${apt_env[@]}" apt-get update -q &&
       "${SUDO[@]}" "${apt_env[@]}" apt-get install -y -q --no-install-recommends \
           -o Dpkg::Use-Pty=0 "${missing[@]}"; } >"$log" 2>&1; then
    echo "system-deps: apt-get failed; last lines of $log:" >&2
    tail -n 40 "$log" >&2
    exit 1
fi
rm -f "$log"

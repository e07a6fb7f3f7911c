#!/usr/bin/env bash
# Refresh the page translations: extract the French source strings under idp/ (Python and Jinja,
# see babel.cfg) into idp/translations/messages.pot, merge them into each catalog (creating
# missing ones), then compile the .mo files the app loads. Translate the new or fuzzy entries
# in idp/translations/<lang>/LC_MESSAGES/messages.po and run it again. The demo DSP viewer has a
# catalogue of its own, done the same way: rp_demo/babel.cfg, rp_demo/translations/.
#
#   scripts/update-translations.sh            extract, update, compile
#   scripts/update-translations.sh compile    compile only (after editing the .po files)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYBABEL="${PYBABEL:-.venv/bin/pybabel}"
if [ ! -x "$PYBABEL" ]; then
    PYBABEL="$(command -v pybabel || true)"
fi
if [ -z "$PYBABEL" ]; then
    echo "pybabel not found: run 'make venv' (it comes with the Babel package)" >&2
    exit 1
fi

LANGUAGES=(de en)  # French is the source language

refresh() {  # refresh MAPPING TRANSLATIONS PROJECT
    local mapping="$1" translations="$2" project="$3" template="$2/messages.pot"
    if [ "$MODE" != "compile" ]; then
        "$PYBABEL" extract --mapping-file="$mapping" --keywords=_l --keywords=lazy_gettext \
            --project="$project" --version="$(sed -n "s/^version = //p" setup.cfg)" --copyright-holder="Agence eSanté" --msgid-bugs-address=helpdesk@esante.lu \
            --sort-by-file --width=120 --output-file="$template" .
        for language in "${LANGUAGES[@]}"; do
            if [ -f "$translations/$language/LC_MESSAGES/messages.po" ]; then
                "$PYBABEL" update --input-file="$template" --output-dir="$translations" --locale="$language" \
                    --ignore-obsolete --width=120
            else
                "$PYBABEL" init --input-file="$template" --output-dir="$translations" --locale="$language" --width=120
            fi
        done
    fi
    "$PYBABEL" compile --directory="$translations" --statistics
}

MODE="${1:-}"
refresh babel.cfg idp/translations "eSanté IdP"
refresh rp_demo/babel.cfg rp_demo/translations "eSanté DSP viewer (demo)"

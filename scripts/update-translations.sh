#!/usr/bin/env bash
# Refresh the page translations: extract the French source strings under idp/ (Python and Jinja,
# see babel.cfg) into idp/translations/messages.pot, merge them into each catalog (creating
# missing ones), then compile the .mo files the app loads. Translate the new or fuzzy entries
# in idp/translations/<lang>/LC_MESSAGES/messages.po and run it again.
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

TRANSLATIONS=idp/translations
TEMPLATE="$TRANSLATIONS/messages.pot"
LANGUAGES=(de en)  # French is the source language

if [ "${1:-}" != "compile" ]; then
    "$PYBABEL" extract --mapping-file=babel.cfg --keywords=_l --keywords=lazy_gettext \
        --project="eSanté IdP" --version="$(sed -n "s/^version = //p" setup.cfg)" --copyright-holder="Agence eSanté" --msgid-bugs-address=helpdesk@esante.lu \
        --sort-by-file --width=120 --output-file="$TEMPLATE" .
    for language in "${LANGUAGES[@]}"; do
        if [ -f "$TRANSLATIONS/$language/LC_MESSAGES/messages.po" ]; then
            "$PYBABEL" update --input-file="$TEMPLATE" --output-dir="$TRANSLATIONS" --locale="$language" \
                --ignore-obsolete --width=120
        else
            "$PYBABEL" init --input-file="$TEMPLATE" --output-dir="$TRANSLATIONS" --locale="$language" --width=120
        fi
    done
fi
"$PYBABEL" compile --directory="$TRANSLATIONS" --statistics

"""How admin commands print: one JSON document with ``--json``, readable text otherwise."""

import json
from datetime import date, datetime
from typing import Any, Callable

import click


def _default(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds") + "Z"
    if isinstance(value, date):
        return value.isoformat()
    raise TypeError(f"cannot print {type(value).__name__}")


def emit(document: Any, as_json: bool, as_text: Callable[[Any], str] | None = None) -> None:
    if as_json or as_text is None:
        click.echo(json.dumps(document, default=_default, ensure_ascii=False, indent=2))
    else:
        click.echo(as_text(document))

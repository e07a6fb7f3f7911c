"""Fixtures and helpers for the patient page tests."""

import itertools
import re
import secrets

import pytest
from sqlalchemy import select

from idp import audit
from idp.extensions import db

LABEL_RE = re.compile(r'<label for="([^"]+)"')
INPUT_RE = re.compile(r"<input\b[^>]*>")


def labelled_ids(html: str) -> set[str]:
    return set(LABEL_RE.findall(html))


def visible_input_ids(html: str) -> list[str]:
    """Ids of every input a person fills in or picks (hidden inputs and the CSRF token excluded)."""
    ids = []
    for tag in INPUT_RE.findall(html):
        if 'type="hidden"' in tag:
            continue
        match = re.search(r'\bid="([^"]+)"', tag)
        ids.append(match.group(1) if match else "<input without id>")
    return ids


def audit_names() -> list[str]:
    return list(db.session.scalars(select(audit.AuditEvent.name).order_by(audit.AuditEvent.id)))


@pytest.fixture
def second_client(app):
    """Another browser: its own cookies, same server."""
    return app.test_client()


@pytest.fixture
def distinct_codes(monkeypatch):
    """One-time codes 100001, 100002, ... so two codes in a test never coincide by chance."""
    numbers = itertools.count(100001)
    draw = secrets.randbelow
    monkeypatch.setattr(secrets, "randbelow", lambda bound: next(numbers) if bound == 10**6 else draw(bound))

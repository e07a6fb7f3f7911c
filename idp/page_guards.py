"""Guards every page layer (flows, federation) shares: the logged-in patient, and where a page may send the browser next."""

from functools import wraps

from flask import g, redirect, request, url_for

from . import account as accounts, sso_session


def safe_next(target: str | None) -> str:
    """Only paths on this server: never an open redirect.

    Browsers drop tabs and newlines from URLs and read ``\\`` as ``/`` (WHATWG URL), so
    ``/\\evil.example`` or ``/<tab>/evil.example`` would leave the site: any of them refuses.
    """
    if target and target.startswith("/") and not target.startswith("//") and not any(ch == "\\" or ch.isspace() or ord(ch) < 32 for ch in target):
        return target
    return url_for("flows.services")


def login_required(view):
    """The page needs a logged-in patient with an active account (``g.account``, ``g.sso``);
    otherwise the login page, coming back here afterwards."""

    @wraps(view)
    def wrapper(*args, **kwargs):
        current = sso_session.current()
        account = accounts.get(current.account_id) if current else None
        if account is None or not account.is_active:
            return redirect(url_for("flows.login", next=request.full_path.rstrip("?")), code=303)
        g.account, g.sso = account, current
        return view(*args, **kwargs)

    return wrapper

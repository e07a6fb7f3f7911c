"""How requests use their database connection: no round trip that the request does not need.

**Autocommit where one statement is the whole change.** A read, or a write that is one statement
(a client-credentials grant: the token row and its audit event in one ``WITH``), needs no
``BEGIN`` and ``COMMIT`` round trips: :func:`autocommit` (PostgreSQL only: elsewhere the token
and its audit event are two statements, which must stay one transaction).

**Hot statements as SQL text.** :class:`PreparedStatement` compiles a Core statement once for
PostgreSQL and runs its text at the driver level (psycopg prepares it after a few uses): no
compilation-cache lookup or bind processing per call (about 6% of a token request, measured).
The hot reads (userinfo, introspection, the refresh claim) get plain rows back, no ORM entities.

**Recovering from a database restart.**
SQLAlchemy's ``pool_pre_ping`` sends ``SELECT 1`` at every checkout of a pooled connection, a
round trip on every request for an event of a few times a year. Instead a pooled connection is
used as it is. After a database restart its first statement fails with a disconnect error;
SQLAlchemy then invalidates the pool (every connection older than the failure is replaced at its
next checkout), and the view runs once more on a fresh connection: only when no statement of the
request had succeeded before, so nothing was written and nothing is done twice. A second failure
(the database still down) is the usual 503 of :mod:`idp.errors`.
"""

import functools
from typing import Any

from flask import Flask, g, has_request_context
from sqlalchemy import JSON, Connection, CursorResult, Executable, Row, event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from .extensions import db

_USED = "idp_database_used"


@event.listens_for(Engine, "after_cursor_execute")
def _mark_used(connection, cursor, statement, parameters, context, executemany) -> None:
    if has_request_context():
        setattr(g, _USED, True)


def retry_once_on_disconnect(view):
    """Run ``view`` again when its first statement met a connection the database had closed."""

    @functools.wraps(view)
    def retrying(*args, **kwargs):
        try:
            return view(*args, **kwargs)
        except DBAPIError as error:
            if not error.connection_invalidated or g.get(_USED):
                raise
            db.session.rollback()  # forget the invalidated connection; the next statement takes a new one
            return view(*args, **kwargs)

    return retrying


class PreparedStatement:
    """``statement`` (built once, with bind parameters) run on ``connection``: on PostgreSQL as its
    compiled SQL text through ``exec_driver_sql`` (SQLAlchemy's events, error translation and
    disconnect handling still apply), JSON parameters adapted for psycopg; elsewhere as it is."""

    def __init__(self, statement: Executable):
        self.statement = statement
        self._compiled: tuple[str, frozenset[str]] | None = None

    def execute(self, connection: Connection, parameters: dict[str, Any]) -> CursorResult:
        """Run the statement; its rows (a ``RETURNING`` or a select) are plain named tuples, read
        as the driver gives them (psycopg decodes JSON, dates and times itself)."""
        if connection.dialect.name != "postgresql":
            return connection.execute(self.statement, parameters)
        if self._compiled is None:
            compiled = self.statement.compile(dialect=connection.dialect)
            json_names = frozenset(name for name, bind in compiled.binds.items() if isinstance(bind.type, JSON))
            self._compiled = (compiled.string, json_names)
        sql, json_names = self._compiled
        from psycopg.types.json import Json

        return connection.exec_driver_sql(sql, {name: Json(value) if name in json_names else value for name, value in parameters.items()})

    def first(self, parameters: dict[str, Any]) -> Row | None:
        """The first row the statement returns on the request's connection, or None."""
        return self.execute(db.session.connection(), parameters).first()


def use_autocommit() -> None:
    """Each statement of this request commits by itself (call before its first statement)."""
    if db.engine.dialect.name == "postgresql":
        db.session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})


def autocommit(view):
    """:func:`use_autocommit` for a whole view (decorator, above those that read the database)."""

    @functools.wraps(view)
    def each_statement_commits(*args, **kwargs):
        use_autocommit()
        return view(*args, **kwargs)

    return each_statement_commits


def init_app(app: Flask) -> None:
    """Wrap every view registered so far (call it once the blueprints are registered)."""
    for endpoint, view in app.view_functions.items():
        app.view_functions[endpoint] = retry_once_on_disconnect(view)

"""Per-account throttles: how often one account may be tried, from whatever addresses.

The per-address limits (Flask-Limiter, ``RATE_LIMIT_*``) do not stop a burst spread over many
addresses. These count by the account tried instead (a matricule, an account, an admin's
name): the same budget however many addresses share it. Each throttle is a setting holding
one or more limits in Flask-Limiter's syntax (``"10 per minute; 50 per day"``); every attempt
counts, right or wrong. Counting uses a moving window (``limits``), so no window edge doubles a
burst; in Redis when ``REDIS_URL`` is set (one count for every instance), else in process
memory. When Redis stops answering each instance counts in its own memory, as the per-address
limits do, and tries Redis again after ``REDIS_RETRY_SECONDS``.

The keys are HMACs under ``SECRET_KEY``: Redis never holds a matricule. Callers throttle what
a person typed, whether or not an account has it, so the answer tells nobody which exist.
"""

import hashlib
import hmac
import math
import threading
import time

from flask import Flask, current_app
from limits import RateLimitItem, parse_many
from limits.errors import StorageError
from limits.storage import MemoryStorage, Storage, storage_from_string
from limits.strategies import MovingWindowRateLimiter

REDIS_RETRY_SECONDS = 30
REDIS_TIMEOUT_SECONDS = 1.0
_NAMESPACE = "account-throttle"


class Throttled(Exception):
    """Past a per-account limit; ``retry_after`` seconds until one more attempt is allowed."""

    def __init__(self, retry_after: int):
        super().__init__(f"retry in {retry_after}s")
        self.retry_after = retry_after


class _Counters:
    """One app's storages: the shared one (Redis or memory) and the memory it falls back to."""

    def __init__(self, redis_url: str | None):
        self.shared: Storage = (storage_from_string(redis_url, wrap_exceptions=True, socket_timeout=REDIS_TIMEOUT_SECONDS,
                                                    socket_connect_timeout=REDIS_TIMEOUT_SECONDS)
                                if redis_url else MemoryStorage())
        self.fallback = MemoryStorage()
        self.shared_down_since: float | None = None
        self.lock = threading.Lock()

    def strategy(self) -> tuple[MovingWindowRateLimiter, bool]:
        """The limiter to count with, and whether it is the shared storage."""
        with self.lock:
            if self.shared_down_since is not None and time.monotonic() - self.shared_down_since < REDIS_RETRY_SECONDS:
                return MovingWindowRateLimiter(self.fallback), False
        return MovingWindowRateLimiter(self.shared), True

    def shared_failed(self) -> None:
        with self.lock:
            self.shared_down_since = time.monotonic()

    def shared_answered(self) -> None:
        with self.lock:
            self.shared_down_since = None


def init_app(app: Flask) -> None:
    app.extensions[_NAMESPACE] = _Counters(app.config.get("REDIS_URL"))


def _key(setting: str, subject: tuple[object, ...]) -> str:
    message = "|".join([setting, *map(str, subject)]).encode()
    return hmac.new(current_app.config["SECRET_KEY"].encode(), message, hashlib.sha256).hexdigest()[:32]


def check(setting: str, *subject: object) -> None:
    """Count one attempt on ``subject`` under the limits of ``setting``; raise :class:`Throttled` past any of them."""
    counters: _Counters = current_app.extensions[_NAMESPACE]
    limits = parse_many(current_app.config[setting])
    key = _key(setting, subject)
    limiter, shared = counters.strategy()
    try:
        refused = [limit for limit in limits if not limiter.hit(limit, _NAMESPACE, key)]
    except StorageError:
        current_app.logger.warning("per-account throttle: Redis unreachable, counting in this instance's memory")
        counters.shared_failed()
        limiter = MovingWindowRateLimiter(counters.fallback)
        refused = [limit for limit in limits if not limiter.hit(limit, _NAMESPACE, key)]
    else:
        if shared:
            counters.shared_answered()
    if refused:
        raise Throttled(_retry_after(limiter, refused, key))


def _retry_after(limiter: MovingWindowRateLimiter, refused: list[RateLimitItem], key: str) -> int:
    try:
        reset_at = max(limiter.get_window_stats(limit, _NAMESPACE, key).reset_time for limit in refused)
    except StorageError:
        return max(limit.get_expiry() for limit in refused)
    return max(1, math.ceil(reset_at - time.time()))

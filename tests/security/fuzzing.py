"""How long the fuzz tests run: bounded in the normal suite, much longer under ``make fuzz``.

``make fuzz`` sets ``IDP_FUZZ=1`` and selects the tests marked ``fuzz``; they then run
``FUZZ_FACTOR`` times as many examples. The bounded run keeps the normal suite fast while still
exercising every strategy on each run (hypothesis also replays the failures it saved).
"""

import os

from hypothesis import HealthCheck, settings

FUZZ = os.environ.get("IDP_FUZZ", "").strip() == "1"
FUZZ_FACTOR = 20


def examples(bounded: int) -> int:
    return bounded * FUZZ_FACTOR if FUZZ else bounded


def http_examples() -> int:
    """Examples for properties that go through the whole app (a few milliseconds each)."""
    return examples(10)


def fuzz_settings(bounded: int) -> settings:
    return settings(max_examples=examples(bounded), deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

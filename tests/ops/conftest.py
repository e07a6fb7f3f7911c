"""Fixtures of the operations tests: the OIDC driver of the OAuth tests, and metric readers."""

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.oauth.conftest import OidcDriver


@pytest.fixture
def oidc(client, patients):
    return OidcDriver(client, patients)


def metric_value(exposition: str, name: str, **labels) -> float:
    """The sum of the samples called ``name`` whose labels include ``labels``, in a /metrics text."""
    total = 0.0
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(key) == value for key, value in labels.items()):
                total += sample.value
    return total

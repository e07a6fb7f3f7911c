"""The JSON API's tests use the delegation fixtures: patients, a minor child, the relying parties."""

from tests.delegation.conftest import child, parent, pharmacy, viewer  # noqa: F401  (fixtures)
from tests.oauth.conftest import oidc  # noqa: F401  (the code-flow driver fixture)

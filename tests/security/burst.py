"""Real bursts against a live server: many visitors, each from its own loopback address.

An attacker spreads a burst over many source addresses so that per-address limits never see
more than one request each; Linux routes the whole of 127.0.0.0/8 to the loopback interface,
so a test can do the same. Every request of a burst is released at once by a barrier, each on
its own thread and its own TCP connection, as the black-box attack of issue 13 did.
"""

import re
import threading
from typing import Callable
from urllib.parse import urljoin

import requests
from requests.adapters import HTTPAdapter

CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


class SourceAddressAdapter(HTTPAdapter):
    """Opens every connection from ``address`` (urllib3's ``source_address``)."""

    def __init__(self, address: str):
        self.address = address
        super().__init__()

    def init_poolmanager(self, *args, **kwargs):
        kwargs["source_address"] = (self.address, 0)
        super().init_poolmanager(*args, **kwargs)


def address(index: int) -> str:
    """The ``index``-th loopback address after 127.0.0.1: 127.0.0.2, 127.0.0.3, ... 127.0.1.2 ..."""
    return f"127.0.{index // 250}.{index % 250 + 2}"


class Visitor:
    """One browser (its own cookies) on one source address; redirects are not followed."""

    def __init__(self, base: str, source: str = "127.0.0.1", cookies: requests.cookies.RequestsCookieJar | None = None):
        self.base, self.source = base, source
        self.http = requests.Session()
        adapter = SourceAddressAdapter(source)
        self.http.mount("http://", adapter)
        if cookies is not None:
            self.http.cookies.update(cookies)

    def url(self, path: str) -> str:
        return urljoin(self.base, path)

    def get(self, path: str, **kwargs) -> requests.Response:
        return self.http.get(self.url(path), allow_redirects=False, timeout=60, **kwargs)

    def post(self, path: str, data: dict | None = None, **kwargs) -> requests.Response:
        return self.http.post(self.url(path), data=data, allow_redirects=False, timeout=60, **kwargs)

    def csrf(self, path: str) -> str:
        page = self.get(path)
        assert page.status_code == 200, (path, page.status_code, page.text[:500])
        return CSRF.search(page.text).group(1)

    def submit(self, path: str, page: str | None = None, **data) -> requests.Response:
        """Fetch the form's page for its CSRF token, then post ``data``."""
        return self.post(path, {"csrf_token": self.csrf(page or path), **data})

    def clone(self, source: str) -> "Visitor":
        """The same browser (its cookies) seen from another address: a copied cookie jar."""
        return Visitor(self.base, source, self.http.cookies)


def burst(requests_to_send: list[Callable[[], requests.Response]]) -> list[requests.Response]:
    """Send every request at the same moment, each from its own thread; their responses, in order."""
    barrier = threading.Barrier(len(requests_to_send))
    responses: list = [None] * len(requests_to_send)
    failures: list = []

    def run(index: int, send: Callable[[], requests.Response]) -> None:
        barrier.wait()
        try:
            responses[index] = send()
        except Exception as error:  # a connection the server dropped: the test must see it
            failures.append(repr(error))

    threads = [threading.Thread(target=run, args=(index, send)) for index, send in enumerate(requests_to_send)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not failures, failures[:3]
    assert all(response is not None for response in responses), "a request of the burst did not finish"
    return responses

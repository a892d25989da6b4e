"""The one test seam for metadata documents: the production fetcher (consent.cimd.MetadataFetcher)
constructed with a resolver that knows a single test host name, which it sends to the loopback
metadata server of these tests, and a TLS context that trusts the tests' own CA. Every other host
goes through the production resolver, so private, loopback and link-local targets stay refused even
on the server under test. Only tests/onboarding/server_settings.py names this class."""

from __future__ import annotations

import os
import ssl

from oauth2_provider import cimd as dot_cimd

from consent.cimd import MetadataFetcher

TEST_HOST = "clients.onboarding.test"


def host_resolver(test_host: str, address: str = "127.0.0.1"):
    def resolve(hostname: str, port: int) -> list[str]:
        if hostname.lower() == test_host:
            return [address]
        return dot_cimd._resolve_and_validate(hostname, port)

    return resolve


def seam_fetcher(ca_file: str, test_host: str = TEST_HOST) -> MetadataFetcher:
    return MetadataFetcher(resolve=host_resolver(test_host), ssl_context=ssl.create_default_context(cafile=ca_file))


class TestHostFetcher(MetadataFetcher):
    """What the server under test constructs (DOT calls the class without arguments)."""

    __test__ = False  # not a pytest test class

    def __init__(self) -> None:
        ca_file = os.environ["ONBOARDING_CIMD_CA"]
        host = os.environ.get("ONBOARDING_CIMD_HOST", TEST_HOST)
        super().__init__(resolve=host_resolver(host), ssl_context=ssl.create_default_context(cafile=ca_file))

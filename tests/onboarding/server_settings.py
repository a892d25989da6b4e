"""Settings of the onboarding server under test: the shared test settings (which read CIMD_ENABLED
and DCR_ENABLED from the environment like production does) with the metadata-document fetcher that
can reach the tests' loopback metadata server (tests/onboarding/fetcher.py)."""

from tests.settings import *  # noqa: F403
from tests.settings import OAUTH2_PROVIDER

OAUTH2_PROVIDER = {**OAUTH2_PROVIDER, "CIMD_METADATA_FETCHER": "tests.onboarding.fetcher.TestHostFetcher"}

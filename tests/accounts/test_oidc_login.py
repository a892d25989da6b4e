"""Login through the sandbox Okta (requirements 23 and 24).
23: the OIDC `state` and `nonce` we send are random and single-use, expire after
OKTA_LOGIN_STATE_SECONDS, and are checked at the callback: an unknown, replayed or stale state, or
a nonce that differs, ends in a refused login (audited login.failure), no user and no session.
24: the ID token must be RS256-signed by the IdP's key, from our issuer, for our client, unexpired
(unit tests with a local key); users are keyed by `sub`, never matched by email."""

from __future__ import annotations

import base64
import json
import time
from importlib import import_module
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from django.conf import settings
from django.core.exceptions import SuspiciousOperation

from accounts.backends import OktaOIDCBackend
from accounts.models import User
from audit.models import AuditEvent
from tests.clients import Browser
from tests.consent.flows import counts, idp_login_callback

ALICE_SUB = "00u1alice00000000001"


def _query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def _session(browser: Browser) -> dict[str, Any]:
    key = browser.http.cookies.get(settings.SESSION_COOKIE_NAME)
    if not key:
        return {}
    store = import_module(settings.SESSION_ENGINE).SessionStore(session_key=key)
    return dict(store.items())


def _logged_in(browser: Browser) -> bool:
    return "_auth_user_id" in _session(browser)


def _failures() -> list[str]:
    return list(AuditEvent.objects.filter(event_type="login.failure").order_by("id").values_list("reason", flat=True))


def _refused(response, browser: Browser, status: int = 400) -> None:
    assert response.status_code == status, response.text[:300]
    assert "Sign-in did not complete" in response.text and "Traceback" not in response.text
    assert not _logged_in(browser)
    assert not any(counts().values()), counts()  # no token, code, consent or login session either


@pytest.fixture
def alice(server_url: str, okta_org: str):
    browser = Browser("alice")
    yield browser
    browser.close()


# --- 23: state and nonce, end to end ---------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_state_and_nonce_are_random_and_kept_server_side(server_url: str, alice: Browser) -> None:
    sent = []
    for _ in range(2):
        response = alice.http.get(f"{server_url}/oidc/authenticate/", params={"next": "/"})
        sent.append(_query(response.headers["location"]))
    for params in sent:
        assert len(params["state"]) >= 32 and len(params["nonce"]) >= 32
        assert params["code_challenge_method"] == "S256" and params["client_id"] == settings.OIDC_RP_CLIENT_ID
    assert sent[0]["state"] != sent[1]["state"] and sent[0]["nonce"] != sent[1]["nonce"]
    pending = _session(alice)["oidc_states"]
    assert set(pending) == {sent[0]["state"], sent[1]["state"]}
    assert pending[sent[0]["state"]]["nonce"] == sent[0]["nonce"]


@pytest.mark.django_db(transaction=True)
def test_login_succeeds_once_and_the_callback_cannot_be_replayed(server_url: str, alice: Browser) -> None:
    _idp_url, callback = idp_login_callback(alice, server_url)
    first = alice.http.get(callback)
    assert first.status_code == 302 and first.headers["location"] == "/"
    assert _logged_in(alice)
    user = User.objects.get()
    assert user.okta_sub == ALICE_SUB and AuditEvent.objects.filter(event_type="login.success").count() == 1

    # The same browser presents the callback again: its state was used up.
    again = alice.http.get(callback)
    assert again.status_code == 400 and "already used" in again.text
    # Someone else presents the stolen callback URL: no state in their session at all.
    thief = Browser("bob")
    try:
        stolen = thief.http.get(callback)
        _refused(stolen, thief)
    finally:
        thief.close()
    assert User.objects.count() == 1
    assert len(_failures()) == 2 and AuditEvent.objects.filter(event_type="login.success").count() == 1


@pytest.mark.django_db(transaction=True)
def test_unknown_state_is_refused(server_url: str, alice: Browser) -> None:
    # A login in progress (a state is pending), and a callback carrying another state.
    _idp_url, callback = idp_login_callback(alice, server_url)
    parts = urlsplit(callback)
    forged = urlunsplit(parts._replace(query=urlencode({**_query(callback), "state": "x" * 32})))
    _refused(alice.http.get(forged), alice)
    # No state at all, and a state with no login started.
    _refused(alice.http.get(f"{server_url}/oidc/callback/", params={"code": "abc"}), alice)
    fresh = Browser("alice")
    try:
        _refused(fresh.http.get(f"{server_url}/oidc/callback/", params={"code": "abc", "state": "y" * 32}), fresh)
    finally:
        fresh.close()
    assert not User.objects.exists()
    assert len(_failures()) == 3 and all("state" in reason for reason in _failures())
    # The genuine callback still completes: the forged ones consumed nothing.
    assert alice.http.get(callback).status_code == 302 and _logged_in(alice)


@pytest.mark.django_db(transaction=True)
def test_stale_state_is_refused(server_url: str, alice: Browser) -> None:
    _idp_url, callback = idp_login_callback(alice, server_url)
    state = _query(callback)["state"]
    session_key = alice.http.cookies[settings.SESSION_COOKIE_NAME]
    store = import_module(settings.SESSION_ENGINE).SessionStore(session_key=session_key)
    states = store["oidc_states"]
    states[state]["added_on"] = time.time() - settings.OIDC_STATE_MAX_AGE_SECONDS - 5
    store["oidc_states"] = states
    store.save()
    response = alice.http.get(callback)
    _refused(response, alice)
    assert "too long" in response.text
    assert not User.objects.exists() and len(_failures()) == 1
    # The stale state is gone for good.
    assert state not in _session(alice).get("oidc_states", {})
    _refused(alice.http.get(callback), alice)


@pytest.mark.django_db(transaction=True)
def test_nonce_mismatch_is_refused(server_url: str, alice: Browser) -> None:
    def other_nonce(url: str) -> str:
        parts = urlsplit(url)
        return urlunsplit(parts._replace(query=urlencode({**_query(url), "nonce": "n" * 32})))

    _idp_url, callback = idp_login_callback(alice, server_url, tamper=other_nonce)
    _refused(alice.http.get(callback), alice)
    assert not User.objects.exists()
    assert any("nonce" in reason.lower() for reason in _failures())


@pytest.mark.django_db(transaction=True)
def test_error_from_the_idp_is_a_refused_login(server_url: str, alice: Browser) -> None:
    response = alice.http.get(f"{server_url}/oidc/authenticate/", params={"next": "/"})
    state = _query(response.headers["location"])["state"]
    refused = alice.http.get(f"{server_url}/oidc/callback/", params={"error": "access_denied", "state": state})
    _refused(refused, alice, status=403)
    assert state not in _session(alice).get("oidc_states", {})
    assert _failures() == ["Okta returned access_denied"]


# --- 24: users keyed by sub ------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_users_are_keyed_by_sub_never_by_email(server_url: str, alice: Browser) -> None:
    # An account that shares alice's email but not her Okta subject (a reassigned address, or a
    # look-alike account in another org) must not be taken over by her login.
    squatter = User.objects.create(
        username="okta:00uSQUATTER", okta_sub="00uSQUATTER", email="alice@acme.example", okta_login="alice@acme.example"
    )
    for _ in range(2):
        _idp_url, callback = idp_login_callback(alice, server_url)
        assert alice.http.get(callback).status_code == 302
    assert int(_session(alice)["_auth_user_id"]) != squatter.pk
    alice_user = User.objects.get(okta_sub=ALICE_SUB)
    assert int(_session(alice)["_auth_user_id"]) == alice_user.pk
    assert User.objects.count() == 2
    squatter.refresh_from_db()
    assert squatter.okta_sub == "00uSQUATTER" and squatter.last_login is None


@pytest.mark.django_db
def test_filter_users_by_claims_uses_sub_only() -> None:
    User.objects.create(username="a", okta_sub="00uA", email="same@acme.example")
    User.objects.create(username="b", okta_sub="00uB", email="same@acme.example")
    backend = OktaOIDCBackend()
    assert [u.username for u in backend.filter_users_by_claims({"sub": "00uB", "email": "same@acme.example"})] == ["b"]
    assert not backend.filter_users_by_claims({"sub": "00uC", "email": "same@acme.example"}).exists()


# --- 24: ID token verification, with a local key -------------------------------------------------------


@pytest.fixture(scope="module")
def idp_key() -> tuple[Any, jwt.PyJWK]:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = jwt.algorithms.RSAAlgorithm.to_jwk(private.public_key(), as_dict=True)
    return private, jwt.PyJWK({**public, "kid": "k1", "alg": "RS256", "use": "sig"})


def _claims(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "iss": settings.OKTA_ISSUER,
        "aud": settings.OIDC_RP_CLIENT_ID,
        "sub": ALICE_SUB,
        "iat": now,
        "exp": now + 300,
        "nonce": "n1",
        "email": "alice@acme.example",
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def _sign(private: Any, claims: dict[str, Any], alg: str = "RS256") -> str:
    return jwt.encode(claims, private, algorithm=alg, headers={"kid": "k1"})


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_valid_id_token_gives_its_claims(idp_key) -> None:
    private, key = idp_key
    claims = OktaOIDCBackend().get_payload_data(_sign(private, _claims()), key)
    assert claims["sub"] == ALICE_SUB and claims["nonce"] == "n1"


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"iss": "https://evil.okta.com/oauth2/default"}, id="other issuer"),
        pytest.param({"iss": settings.OKTA_ISSUER + "/"}, id="issuer with a trailing slash"),
        pytest.param({"iss": None}, id="no issuer"),
        pytest.param({"aud": "another-client"}, id="other audience"),
        pytest.param({"aud": None}, id="no audience"),
        pytest.param({"exp": int(time.time()) - 120}, id="expired"),
        pytest.param({"exp": None}, id="no expiry"),
        pytest.param({"sub": None}, id="no subject"),
        pytest.param({"iat": int(time.time()) + 3600}, id="issued in the future"),
        pytest.param({"nbf": int(time.time()) + 3600}, id="not yet valid"),
    ],
)
def test_id_token_with_wrong_claims_is_refused(idp_key, changes: dict[str, Any]) -> None:
    private, key = idp_key
    with pytest.raises(SuspiciousOperation):
        OktaOIDCBackend().get_payload_data(_sign(private, _claims(**changes)), key)


@pytest.mark.filterwarnings("ignore:The HMAC key")
def test_id_token_not_signed_by_the_idp_key_is_refused(idp_key) -> None:
    private, key = idp_key
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    valid = _sign(private, _claims())
    header, payload, signature = valid.split(".")
    forged = {
        "other key": _sign(other, _claims()),
        "payload changed": ".".join([header, _b64(_claims(sub="00uMALLORY")), signature]),
        "signature dropped": f"{header}.{payload}.",
        # The client secret is known to the IdP and to us; an HS256 token made with it proves nothing.
        "HS256 with the client secret": _sign(settings.OIDC_RP_CLIENT_SECRET, _claims(), alg="HS256"),
        "alg none": f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{payload}.",
        "alg None in the header, RS256 signature": f"{_b64({'alg': 'None', 'kid': 'k1'})}.{payload}.{signature}",
        "not a JWT": "garbage",
    }
    for name, token in forged.items():
        with pytest.raises(SuspiciousOperation):
            OktaOIDCBackend().get_payload_data(token, key)
            pytest.fail(f"{name} accepted")

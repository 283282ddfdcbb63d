import base64
import hashlib
import hmac
import json
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from django.test import override_settings

from velocity import auth
from velocity.auth import TokenError, issue_token, verify_token

SECRET_SETTINGS = {"SUPABASE_JWT_SECRET": "test-secret-0123456789-0123456789-0123456789-0123456789-0123456789"}


def claims(**overrides: Any) -> dict[str, Any]:
    base = {"sub": str(uuid.uuid4()), "role": "authenticated", "aud": "authenticated", "exp": int(time.time()) + 600}
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def hs256(payload: dict[str, Any], secret: str = SECRET_SETTINGS["SUPABASE_JWT_SECRET"]) -> str:
    return jwt.encode(payload, secret, algorithm="HS256")


@pytest.fixture(autouse=True)
def jwt_secret() -> Iterator[None]:
    with override_settings(**SECRET_SETTINGS):
        yield


def test_it_accepts_an_hs256_token_and_reads_the_user() -> None:
    sub = uuid.uuid4()
    result = verify_token(hs256(claims(sub=str(sub))))
    assert result.sub == sub
    assert result.role == "authenticated"
    assert not result.is_service_role


def test_issue_token_round_trips_through_verification() -> None:
    sub = uuid.uuid4()
    result = verify_token(issue_token(sub=sub, role="service_role", ttl=60))
    assert (result.sub, result.is_service_role) == (sub, True)
    assert result.exp - time.time() == pytest.approx(60, abs=5)


@pytest.mark.parametrize(
    ("token_factory", "code"),
    [
        (lambda: hs256(claims(exp=int(time.time()) - 60)), "auth.expired"),
        (
            lambda: hs256(claims(), secret="another-secret-of-sufficient-length-0123456789-0123456789-0123"),
            "auth.bad_signature",
        ),
        (lambda: hs256(claims(exp=None)), "auth.missing_claim"),
        (lambda: hs256(claims(role=None)), "auth.missing_claim"),
        (lambda: hs256(claims(sub="not-a-uuid")), "auth.bad_subject"),
        (lambda: hs256(claims(sub=None)), "auth.bad_subject"),
        (lambda: jwt.encode(claims(), "", algorithm="none"), "auth.unsupported_algorithm"),
        (
            lambda: jwt.encode(claims(), SECRET_SETTINGS["SUPABASE_JWT_SECRET"], algorithm="HS512"),
            "auth.unsupported_algorithm",
        ),
        (lambda: "not.a.jwt", "auth.malformed"),
        (lambda: "", "auth.missing"),
        (lambda: hs256(claims(aud=None)), "auth.bad_audience"),
        (lambda: hs256(claims(aud="velocity_agent")), "auth.bad_audience"),
        (lambda: hs256(claims(aud=["other", 7])), "auth.bad_audience"),
        (lambda: hs256(claims(exp=str(int(time.time()) + 600))), "auth.invalid"),
        (lambda: hs256(claims(iat=True)), "auth.invalid"),
        (lambda: hs256(claims(nbf="0")), "auth.invalid"),
        (lambda: hs256(claims(sub=str(uuid.uuid4()).upper())), "auth.bad_subject"),
        (lambda: hs256(claims(sub="{" + str(uuid.uuid4()) + "}")), "auth.bad_subject"),
        (lambda: hs256(claims(sub=7)), "auth.bad_subject"),
        (lambda: hs256(claims(role="supabase_admin")), "auth.bad_role"),
        (lambda: hs256(claims(role="anon", aud=None)), "auth.anonymous"),
    ],
    ids=[
        "expired",
        "bad-signature",
        "no-exp",
        "no-role",
        "non-uuid-sub",
        "no-sub",
        "alg-none",
        "hs512",
        "garbage",
        "empty",
        "no-aud-for-a-user",
        "agent-aud-at-a-user-door",
        "aud-not-strings",
        "string-exp",
        "boolean-iat",
        "string-nbf",
        "upper-case-sub",
        "braced-sub",
        "numeric-sub",
        "unknown-role",
        "anon-with-a-sub",
    ],
)
def test_it_refuses_bad_tokens(token_factory: Any, code: str) -> None:
    with pytest.raises(TokenError) as excinfo:
        verify_token(token_factory())
    assert excinfo.value.code == code


def test_it_accepts_an_anon_token_without_a_subject() -> None:
    result = verify_token(hs256(claims(sub=None, role="anon")))
    assert (result.sub, result.role) == (None, "anon")


class JwksServer:
    """A real HTTP server that serves a JWKS document, like a Supabase project's auth endpoint."""

    def __init__(self, keys: list[dict[str, Any]]) -> None:
        body = json.dumps({"keys": keys}).encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/auth/v1/.well-known/jwks.json"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def jwks(rsa_key: rsa.RSAPrivateKey) -> Iterator[str]:
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(rsa_key.public_key()))
    server = JwksServer([{**public, "kid": "key-1", "alg": "RS256", "use": "sig"}])
    auth._jwks_client.cache_clear()
    with override_settings(SUPABASE_JWKS_URL=server.url):
        yield server.url
    auth._jwks_client.cache_clear()
    server.close()


def test_it_accepts_an_rs256_token_signed_by_a_key_in_the_jwks(jwks: str, rsa_key: rsa.RSAPrivateKey) -> None:
    sub = uuid.uuid4()
    token = jwt.encode(claims(sub=str(sub)), rsa_key, algorithm="RS256", headers={"kid": "key-1"})
    assert verify_token(token).sub == sub


def test_it_refuses_an_rs256_token_from_an_unknown_key(jwks: str) -> None:
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = jwt.encode(claims(), stranger, algorithm="RS256", headers={"kid": "key-1"})
    with pytest.raises(TokenError) as excinfo:
        verify_token(token)
    assert excinfo.value.code == "auth.bad_signature"


def test_it_refuses_a_kid_that_is_not_in_the_jwks(jwks: str, rsa_key: rsa.RSAPrivateKey) -> None:
    token = jwt.encode(claims(), rsa_key, algorithm="RS256", headers={"kid": "key-2"})
    with pytest.raises(TokenError) as excinfo:
        verify_token(token)
    assert excinfo.value.code == "auth.unknown_key"


def test_it_refuses_an_es256_token_checked_against_an_rsa_key(jwks: str) -> None:
    ec_key = ec.generate_private_key(ec.SECP256R1())
    token = jwt.encode(claims(), ec_key, algorithm="ES256", headers={"kid": "key-1"})
    with pytest.raises(TokenError) as excinfo:
        verify_token(token)
    assert excinfo.value.code == "auth.wrong_algorithm"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_it_refuses_an_hs256_token_signed_with_the_public_key(jwks: str, rsa_key: rsa.RSAPrivateKey) -> None:
    """The classic algorithm-confusion attack: HMAC keyed with the published RSA key."""
    public_pem = rsa_key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    signing_input = f"{b64(json.dumps({'alg': 'HS256', 'typ': 'JWT'}).encode())}.{b64(json.dumps(claims()).encode())}"
    signature = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    with override_settings(SUPABASE_JWT_SECRET=""), pytest.raises(TokenError) as excinfo:
        verify_token(f"{signing_input}.{b64(signature)}")
    assert excinfo.value.code == "auth.unsupported_algorithm"


def test_supabase_api_keys_without_aud_are_accepted_and_a_list_aud_needs_one_match() -> None:
    anon = verify_token(hs256({"role": "anon", "iss": "supabase", "exp": int(time.time()) + 60}))
    assert (anon.role, anon.sub, anon.aud) == ("anon", None, None)
    user = verify_token(hs256(claims(aud=["other", "authenticated"])))
    assert user.aud == "authenticated"


def test_the_issuer_is_checked_when_a_supabase_project_is_set() -> None:
    with override_settings(SUPABASE_JWT_ISSUERS=["https://ref.supabase.co/auth/v1", "supabase", "velocity"]):
        assert verify_token(hs256(claims(iss="https://ref.supabase.co/auth/v1"))).sub is not None
        for bad in ({"iss": "https://evil.example/auth/v1"}, {"iss": None}):
            with pytest.raises(TokenError) as excinfo:
                verify_token(hs256(claims(**bad)))
            assert excinfo.value.code == "auth.bad_issuer"


def test_an_agent_key_is_accepted_only_where_the_agents_audience_is() -> None:
    machine = uuid.uuid4()
    key = issue_token(
        sub=machine,
        audience=auth.AGENT_AUDIENCE,
        extra={auth.AGENT_PROJECT_CLAIM: "p1", auth.AGENT_MACHINE_CLAIM: str(machine)},
    )
    with pytest.raises(TokenError) as excinfo:
        verify_token(key)
    assert excinfo.value.code == "auth.bad_audience"
    agent = verify_token(key, audiences=auth.realtime_audiences())
    assert (agent.is_agent, agent.agent_project, agent.agent_machine) == (True, "p1", str(machine))


def test_a_user_token_carrying_agent_claims_is_not_an_agent() -> None:
    forged = verify_token(hs256(claims(velocity_project="p1", velocity_machine=str(uuid.uuid4()))))
    assert (forged.is_agent, forged.agent_project) == (False, None)

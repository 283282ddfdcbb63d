"""Token refusals worded as Supabase Realtime words them (realtime_bridge/token_refusals.py), clock injected."""

from __future__ import annotations

import time
import uuid

import jwt
import pytest
from django.conf import settings

from realtime_bridge import token_refusals
from realtime_bridge.token_refusals import is_expired, realtime_claims, refusal
from velocity.auth import TokenError, issue_token


def refused(token: str) -> TokenError:
    with pytest.raises(TokenError) as caught:
        realtime_claims(token, time.time())
    return caught.value


def test_an_expired_token_is_told_with_its_age_at_a_join_and_without_it_at_the_handshake():
    token = issue_token(sub=uuid.uuid4(), ttl=-60)
    exp = jwt.decode(token, options={"verify_signature": False})["exp"]
    told = refusal(refused(token), token, now=exp + 42.9)
    assert told.join_reason == "InvalidJWTToken: Token has expired 42 seconds ago"
    assert told.system_text == "Token has expired 42 seconds ago"
    assert token_refusals.handshake_body(refused(token), token, exp + 42) == (401, {"error": "Token has expired"})


def test_no_leeway_past_the_expiry_as_in_realtime():
    token = issue_token(sub=uuid.uuid4(), ttl=-2)  # within PyJWT's leeway for the REST API
    assert refused(token).code == "auth.expired"
    assert is_expired(100, 100.0) and is_expired(100, 100.9) and not is_expired(101, 100.9)


def test_a_malformed_token_and_a_missing_key():
    told = refusal(refused("not.a.jwt"), "not.a.jwt", 0)
    assert told.join_reason == "MalformedJWT: The token provided is not a valid JWT"
    assert told.handshake == "The token provided is not a valid JWT"
    assert refusal(refused(""), "", 0).handshake == "API key is missing"


def test_a_bad_signature_is_told_as_realtime_inspects_it_in_a_system_message():
    forged = issue_token(sub=uuid.uuid4())[:-4] + "AAAA"
    told = refusal(refused(forged), forged, 0)
    assert told.join_reason == "JwtSignatureError: Failed to validate JWT signature"
    assert (told.handshake, told.system_text) == ("Failed to validate JWT signature", ":signature_error")


def test_missing_role_or_exp_and_an_unknown_algorithm():
    no_exp = jwt.encode({"role": "anon"}, settings.SUPABASE_JWT_SECRET, algorithm="HS256")
    assert refusal(refused(no_exp), no_exp, 0).join_reason == (
        "InvalidJWTToken: Fields `role` and `exp` are required in JWT"
    )
    header = jwt.utils.base64url_encode(b'{"alg":"none","kid":"k\\"1"}').decode()
    unsigned = f"{header}.{jwt.utils.base64url_encode(b'{}').decode()}."
    told = refusal(refused(unsigned), unsigned, 0)
    assert told.code == "JwtSignerError"
    assert told.text == (
        'Failed to generate JWT signer for key ID (kid) "k\\"1", check your JWT secret or JWKS configuration'
    )


def test_refusals_realtime_does_not_make_keep_this_services_text():
    anon_with_sub = issue_token(sub=uuid.uuid4(), role="anon")
    told = refusal(refused(anon_with_sub), anon_with_sub, 0)
    assert told.join_reason == "InvalidJWTToken: An anonymous token cannot speak for a user"

"""The hosted path of the suite's target, without a hosted project: the variables parsed and the target built.

No Supabase project is reachable from CI, so this is what runs of the hosted path there: which URL the clients
are given, which keys, and that a signed-in user's token is minted with the project's JWT secret.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import jwt
import pytest
from django.conf import settings

from realtime_bridge.testing import REPO_ROOT, RealtimeServer, service_token
from realtime_bridge.tests.conformance.conftest import (
    KEYS_VARIABLE,
    URL_VARIABLE,
    hosted_target,
    parse_keys,
    target_from_environment,
)
from velocity.auth import issue_token

HERE = Path(__file__).parent

KEYS = "anon=eyJanon.key.sig, service=eyJservice.key.sig,jwt_secret=super-secret-with-at-least-32-characters"


def test_without_the_url_the_embedded_endpoint_is_the_target() -> None:
    assert target_from_environment({}) is None
    assert target_from_environment({URL_VARIABLE: "  ", KEYS_VARIABLE: KEYS}) is None


def test_the_url_and_keys_make_a_hosted_target_with_the_realtime_and_rest_bases() -> None:
    target = target_from_environment({URL_VARIABLE: "https://abcd.supabase.co/", KEYS_VARIABLE: KEYS})
    assert target is not None
    assert target.hosted
    assert target.http_base == "https://abcd.supabase.co/realtime/v1"
    assert target.rest_base == "https://abcd.supabase.co/realtime/v1/api"
    assert target.project_url == "https://abcd.supabase.co"
    assert (target.anon_key, target.service_key) == ("eyJanon.key.sig", "eyJservice.key.sig")


def test_a_url_given_with_its_realtime_path_is_not_doubled() -> None:
    target = hosted_target("http://localhost:54321/realtime/v1", {"anon": "a", "service": "s"})
    assert target.http_base == "http://localhost:54321/realtime/v1"


def test_user_keys_are_signed_with_the_projects_jwt_secret() -> None:
    target = hosted_target("https://abcd.supabase.co", parse_keys(KEYS))
    sub = uuid.uuid4()
    claims = jwt.decode(
        target.user_key(sub, ttl=60),
        "super-secret-with-at-least-32-characters",
        algorithms=["HS256"],
        audience="authenticated",
    )
    assert (claims["sub"], claims["role"]) == (str(sub), "authenticated")
    assert claims["exp"] - claims["iat"] == 60


def test_without_a_jwt_secret_cases_needing_a_user_are_skipped() -> None:
    target = hosted_target("https://abcd.supabase.co", {"anon": "a", "service": "s"})
    with pytest.raises(pytest.skip.Exception, match="jwt_secret"):
        target.user_key()


@pytest.mark.parametrize(
    ("url", "keys", "message"),
    [
        ("https://abcd.supabase.co", "anon=a", "lacks service"),
        ("https://abcd.supabase.co", "", "lacks anon, service"),
        ("https://abcd.supabase.co", "anon=a,service", "service has no value"),
        ("abcd.supabase.co", "anon=a,service=s", "must be the project's URL"),
    ],
)
def test_incomplete_variables_stop_the_run_with_what_is_missing(url: str, keys: str, message: str) -> None:
    with pytest.raises(pytest.UsageError, match=message):
        target_from_environment({URL_VARIABLE: url, KEYS_VARIABLE: keys})


HOSTED_PATH_CASES = ["test_broadcast.py", "test_private_channels.py", "test_tokens.py"]


@pytest.mark.slow
def test_the_suite_runs_through_the_two_variables_against_a_server_given_by_url(
    realtime_server: RealtimeServer,
) -> None:
    """The hosted path end to end: a child pytest given only the two variables, pointed at our endpoint as if it
    were a hosted project (its keys, and its JWT secret for the signed-in users), runs the cases and skips none."""
    project_url = realtime_server.http_base.removesuffix("/realtime/v1")
    anon = issue_token(sub=None, role="anon")
    keys = f"anon={anon},service={service_token()},jwt_secret={settings.SUPABASE_JWT_SECRET}"
    env = {**os.environ, URL_VARIABLE: project_url, KEYS_VARIABLE: keys}
    cases = [str(HERE / name) for name in HOSTED_PATH_CASES]
    argv = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *cases]
    child = subprocess.run(argv, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert child.returncode == 0, child.stdout + child.stderr
    summary = child.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"\d+ passed in [\d.]+s( \([\d:]+\))?", summary), child.stdout

"""Preview hosts must not share the orchestrator's registrable domain (velocity.E009, velocity.E010)."""

from pathlib import Path

import pytest
from django.core.checks import CheckMessage
from django.test import override_settings

from velocity.checks import check_preview_hosts
from velocity.preview_hosts import normalize_host, orchestrator_hosts, preview_session_id, registrable_domain
from velocity.testing import manage
from velocity.tests.test_production import production_env

FLY = {"MACHINE_PROVIDER": "fly", "FLY_API_TOKEN": "t", "FLY_APP_NAME": "previews"}


def ids(messages: list[CheckMessage]) -> list[str]:
    return [str(m.id) for m in messages]


def deployed(suffix: str, orchestrator: str, *hosts: str) -> override_settings:
    """Settings as velocity/settings.py derives them: the preview wildcard is appended to ALLOWED_HOSTS."""
    allowed = [*(hosts or (orchestrator,)), f".{suffix}"] if suffix else list(hosts or (orchestrator,))
    return override_settings(
        **FLY, PREVIEW_HOST_SUFFIX=suffix, ORCHESTRATOR_URL=f"https://{orchestrator}", ALLOWED_HOSTS=allowed
    )


def test_fly_without_a_preview_host_suffix_is_error_e006() -> None:
    with deployed("", "velocity.example.com"):
        messages = check_preview_hosts(None)
    assert ids(messages) == ["velocity.E009"]
    assert "PREVIEW_HOST_SUFFIX" in messages[0].msg


def test_previews_on_the_orchestrators_registrable_domain_are_error_e007() -> None:
    with deployed("preview.example.com", "velocity.example.com"):
        messages = check_preview_hosts(None)
    assert ids(messages) == ["velocity.E010"]
    assert "'example.com'" in messages[0].msg and "velocity.example.com" in messages[0].msg


def test_any_allowed_host_on_the_previews_domain_is_error_e007_too() -> None:
    with deployed(
        "previews.example-previews.dev", "velocity.example.com", "velocity.example.com", "example-previews.dev"
    ):
        assert ids(check_preview_hosts(None)) == ["velocity.E010"]
    with deployed("example-previews.dev", "velocity.example.com", "velocity.example.com", ".example-previews.dev"):
        assert ids(check_preview_hosts(None)) == [], "the preview wildcard itself is the previews' own"


def test_previews_on_a_separate_registrable_domain_are_clean() -> None:
    with deployed("example-previews.dev", "velocity.example.com", "velocity.example.com", "localhost", "[::1]"):
        assert check_preview_hosts(None) == []


def test_the_psl_private_section_counts_github_io_subdomains_as_separate_sites() -> None:
    # Browsers read the whole list: a.github.io cannot set cookies for b.github.io, so the check agrees.
    assert (registrable_domain("x.a.github.io"), registrable_domain("b.github.io")) == ("a.github.io", "b.github.io")
    with deployed("b.github.io", "a.github.io"):
        assert check_preview_hosts(None) == []
    with deployed("previews.a.github.io", "a.github.io"):
        assert ids(check_preview_hosts(None)) == ["velocity.E010"]


def test_registrable_domains_follow_the_list_and_keep_addresses_whole() -> None:
    assert registrable_domain("velocity.example.co.uk") == "example.co.uk"
    assert registrable_domain("Velocity-Orchestrator.fly.dev.") == "velocity-orchestrator.fly.dev"
    assert [registrable_domain(h) for h in ("127.0.0.1", "[::1]", "localhost")] == ["127.0.0.1", "::1", "localhost"]


def test_the_local_provider_needs_no_suffix() -> None:
    with override_settings(MACHINE_PROVIDER="local", PREVIEW_HOST_SUFFIX=""):
        assert check_preview_hosts(None) == []


@override_settings(PREVIEW_HOST_SUFFIX="example-previews.dev")
def test_orchestrator_hosts_leave_out_the_preview_wildcard_and_star() -> None:
    with override_settings(
        ORCHESTRATOR_URL="https://Velocity.example.com:8443",
        ALLOWED_HOSTS=["*", ".example-previews.dev", ".ops.example.com"],
    ):
        assert orchestrator_hosts() == ["ops.example.com", "velocity.example.com"]


@override_settings(PREVIEW_HOST_SUFFIX="example-previews.dev")
def test_a_preview_host_names_one_session_by_its_canonical_uuid() -> None:
    sid = "0b7c58a4-5d0f-4b43-9d7e-2f1a1c7e9a10"
    assert str(preview_session_id(normalize_host(f"{sid.upper()}.Example-Previews.dev.:443"))) == sid
    assert preview_session_id(f"{sid.replace('-', '')}.example-previews.dev") is None
    assert preview_session_id(f"{sid}.x.example-previews.dev") is None
    assert preview_session_id("admin.example-previews.dev") is None


@pytest.mark.slow
def test_check_deploy_fails_on_fly_without_a_suffix_or_with_one_on_the_orchestrators_domain(tmp_path: Path) -> None:
    env = production_env(tmp_path)
    del env["PREVIEW_HOST_SUFFIX"]
    failed = manage(env, "check", "--deploy", check=False)
    assert failed.returncode != 0 and "velocity.E009" in failed.stderr
    same_site = manage(
        {**env, "PREVIEW_HOST_SUFFIX": "previews.velocity-orchestrator.fly.dev"}, "check", "--deploy", check=False
    )
    assert same_site.returncode != 0 and "velocity.E010" in same_site.stderr

from pathlib import Path

import pytest

from preview_agent.config import ConfigError, load_config


def test_it_runs_with_the_seed_defaults() -> None:
    config = load_config({"PROJECT_ID": "p1"})
    assert (config.port, config.inactivity_timeout, config.max_file_bytes) == (8080, 1800, 5 * 1024 * 1024)
    assert config.project_dir == Path("/app/project")
    assert config.channel_name == "project:p1"


def test_it_never_shows_the_secrets_in_its_repr() -> None:
    config = load_config({"REALTIME_KEY": "rt-secret", "MACHINE_TOKEN": "machine-secret"})
    assert "secret" not in repr(config)


def test_an_assignment_fills_in_the_project_and_keeps_the_key_when_none_is_given() -> None:
    config = load_config({"REALTIME_KEY": "boot-key"})
    assigned = config.with_assignment(project_id="p9", session_id="s9", realtime_key="")
    assert (assigned.project_id, assigned.session_id, assigned.realtime_key) == ("p9", "s9", "boot-key")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PORT": "http"}, "PORT must be a number"),
        ({"PORT": "70000"}, "PORT must be a TCP port"),
        ({"INACTIVITY_TIMEOUT": "0"}, "INACTIVITY_TIMEOUT must be at least 0.1"),
        ({"REALTIME_URL": "ftp://x"}, "REALTIME_URL must start with"),
        ({"ORCHESTRATOR_URL": "orchestrator:8000"}, "ORCHESTRATOR_URL must start with"),
    ],
)
def test_it_names_the_variable_it_cannot_use(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(env)

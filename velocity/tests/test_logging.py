import json
import logging

import pytest
from django.test import Client

from velocity.auth import issue_token
from velocity.logging import ConsoleFormatter, JsonFormatter, scrub


@pytest.fixture
def json_records(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO)
    caplog.handler.setFormatter(JsonFormatter())
    return caplog


def json_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, object]]:
    return [json.loads(line) for line in caplog.text.splitlines() if line.strip()]


def test_json_lines_carry_level_logger_message_and_extras(json_records: pytest.LogCaptureFixture) -> None:
    logging.getLogger("velocity.test").info("machine created", extra={"machine_id": "m1", "cpus": 1})
    [entry] = json_lines(json_records)
    assert entry["level"] == "info"
    assert entry["logger"] == "velocity.test"
    assert entry["message"] == "machine created"
    assert (entry["machine_id"], entry["cpus"]) == ("m1", 1)
    assert "time" in entry


@pytest.mark.django_db
def test_each_request_logs_method_path_status_and_duration(
    client: Client, json_records: pytest.LogCaptureFixture
) -> None:
    client.get("/health")
    [entry] = [e for e in json_lines(json_records) if e["logger"] == "velocity.request"]
    assert (entry["method"], entry["path"], entry["status"]) == ("GET", "/health", 200)
    assert isinstance(entry["duration_ms"], float)


@pytest.mark.django_db
def test_no_token_reaches_a_log_line(client: Client, json_records: pytest.LogCaptureFixture) -> None:
    token = issue_token(sub=None, role="service_role")
    client.get(f"/health?apikey={token}", HTTP_AUTHORIZATION=f"Bearer {token}")
    logging.getLogger("velocity.test").warning("refused %s", token, extra={"token": token, "url": f"/x?apikey={token}"})
    logging.getLogger("velocity.test").info("header", extra={"header": f"Bearer {token}"})
    assert json_lines(json_records)
    assert token not in json_records.text
    assert token.split(".")[1] not in json_records.text


def test_scrub_masks_jwts_bearer_tokens_and_credential_parameters() -> None:
    text = "Authorization: Bearer abc.def-123 url=/x?apikey=s3cr3t&vsn=1.0.0 FlyV1 fm2_xyz password=hunter2"
    cleaned = scrub(text)
    for secret in ("abc.def-123", "s3cr3t", "fm2_xyz", "hunter2"):
        assert secret not in cleaned
    assert "vsn=1.0.0" in cleaned


def test_console_format_is_one_readable_line_with_extras() -> None:
    record = logging.makeLogRecord({"name": "velocity.x", "levelno": 20, "levelname": "INFO", "msg": "hello"})
    record.session_id = "s1"
    line = ConsoleFormatter().format(record)
    assert "INFO" in line and "velocity.x: hello" in line and "session_id=s1" in line

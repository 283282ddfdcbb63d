import json
from pathlib import Path

import pytest

from preview_agent.detection import INSTALL_MARKER, detect, install_hash, needs_install
from preview_agent.devserver import LogThrottle, clean_line


def write_package(root: Path, **package: object) -> None:
    (root / "package.json").write_text(json.dumps(package))


@pytest.mark.parametrize(
    ("deps", "kind", "expected"),
    [
        ({"vite": "^7"}, "vite", ["--host", "127.0.0.1", "--port", "5173", "--strictPort"]),
        ({"next": "15"}, "next", ["dev", "--hostname", "127.0.0.1", "--port", "5173"]),
        ({"expo": "52", "react-native-web": "1"}, "expo", ["start", "--web", "--port", "5173"]),
        ({"react-scripts": "5"}, "cra", ["start"]),
    ],
)
def test_it_detects_the_framework_from_the_dependencies(
    tmp_path: Path, deps: dict[str, str], kind: str, expected: list[str]
) -> None:
    write_package(tmp_path, devDependencies=deps)
    plan = detect(tmp_path, 5173)
    assert plan.kind == kind
    assert list(plan.argv[1 : 1 + len(expected)]) == expected


def test_it_points_create_react_app_hot_reload_at_the_page_port(tmp_path: Path) -> None:
    write_package(tmp_path, dependencies={"react-scripts": "5"})
    env = detect(tmp_path, 5173).env
    assert (env["PORT"], env["WDS_SOCKET_PORT"], env["BROWSER"]) == ("5173", "0", "none")


def test_it_prefers_a_local_binary_from_node_modules(tmp_path: Path) -> None:
    write_package(tmp_path, devDependencies={"vite": "^7"})
    (tmp_path / "node_modules/.bin").mkdir(parents=True)
    (tmp_path / "node_modules/.bin/vite").write_text("")
    assert detect(tmp_path, 1).argv[0] == str(tmp_path / "node_modules/.bin/vite")


def test_it_falls_back_to_the_dev_script_then_start_then_static(tmp_path: Path) -> None:
    write_package(tmp_path, scripts={"dev": "serve", "start": "x"})
    assert detect(tmp_path, 1).argv == ("npm", "run", "dev")
    write_package(tmp_path, scripts={"start": "x"})
    assert detect(tmp_path, 1).argv == ("npm", "start")
    write_package(tmp_path, scripts={})
    assert detect(tmp_path, 1).is_static
    (tmp_path / "package.json").write_text("{not json")
    assert detect(tmp_path, 1).is_static


def test_an_explicit_dev_command_wins(tmp_path: Path) -> None:
    write_package(tmp_path, devDependencies={"vite": "^7"})
    plan = detect(tmp_path, 1, "python3 -m http.server $PORT")
    assert (plan.kind, plan.argv[-1]) == ("custom", "python3 -m http.server $PORT")


def test_it_reinstalls_only_when_package_json_or_the_lockfile_changed(tmp_path: Path) -> None:
    assert not needs_install(tmp_path)
    write_package(tmp_path, dependencies={"a": "1"})
    assert needs_install(tmp_path)
    (tmp_path / "node_modules").mkdir()
    (tmp_path / "node_modules" / INSTALL_MARKER).write_text(install_hash(tmp_path) or "")
    assert not needs_install(tmp_path)
    (tmp_path / "package-lock.json").write_text("{}")
    assert needs_install(tmp_path)


def test_the_log_throttle_passes_bursts_and_counts_what_it_drops() -> None:
    now = [0.0]
    throttle = LogThrottle(rate=2, burst=3, clock=lambda: now[0])
    assert [throttle.take()[0] for _ in range(5)] == [True, True, True, False, False]
    now[0] = 1.0
    assert throttle.take() == (True, 2)


def test_it_strips_colour_codes_from_output() -> None:
    assert clean_line(b"\x1b[32m  VITE v7.1.0\x1b[39m ready\r\n") == "  VITE v7.1.0 ready"

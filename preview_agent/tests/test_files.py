import base64
import os
from pathlib import Path

import pytest

from preview_agent.files import FileRefused, FileState, FileStore, check_path, decode_content

ATTACKS = {
    "/etc/passwd": "absolute_path",
    "../outside.txt": "parent_segment",
    "src/../../outside.txt": "parent_segment",
    "src/..": "parent_segment",
    "C:\\Windows\\evil.txt": "backslash",
    "C:/Windows/evil.txt": "absolute_path",
    "src\\..\\..\\outside.txt": "backslash",
    "a\x00b.txt": "nul_byte",
    "\uff0e\uff0e/outside.txt": "parent_segment",  # fullwidth dots fold to '..'
    "\uff0e\uff0e\uff0foutside.txt": "parent_segment",
    "src\uff3c..\uff3coutside.txt": "backslash",  # fullwidth backslash
    "\u202eevil.txt": "control_character",  # right-to-left override
    "a\nb.txt": "control_character",
    "a" * 1025: "path_too_long",
    "src//a.txt": "not_canonical",
    "./a.txt": "not_canonical",
    "": "invalid_path",
}


@pytest.fixture
def layout(tmp_path: Path) -> tuple[Path, Path]:
    project, outside = tmp_path / "project", tmp_path / "outside"
    project.mkdir()
    outside.mkdir()
    return project, outside


@pytest.fixture
def store(layout: tuple[Path, Path]) -> FileStore:
    return FileStore(layout[0], max_bytes=1024)


def files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.mark.parametrize(("path", "code"), ATTACKS.items())
def test_it_refuses_each_dangerous_path_with_a_stable_code(path: str, code: str) -> None:
    with pytest.raises(FileRefused) as refused:
        check_path(path)
    assert refused.value.code == code


@pytest.mark.parametrize("path", ATTACKS)
def test_it_writes_nothing_anywhere_for_a_dangerous_path(
    path: str, store: FileStore, layout: tuple[Path, Path]
) -> None:
    with pytest.raises(FileRefused):
        store.write(path, b"pwned", 1)
    assert files_under(layout[0]) == []
    assert files_under(layout[1]) == []


def test_it_accepts_a_path_of_exactly_1024_characters(store: FileStore) -> None:
    path = "/".join(["d" * 200] * 5) + "/" + "f" * 19
    assert len(path) == 1024
    assert store.write(path, b"ok", 1)[0] == "written"
    assert (store.root / path).read_bytes() == b"ok"


def test_it_accepts_ordinary_unicode_names(store: FileStore) -> None:
    store.write("src/café/ünïcode-文件.tsx", b"x", 1)
    assert (store.root / "src/café/ünïcode-文件.tsx").read_bytes() == b"x"


def test_it_refuses_a_path_that_escapes_through_a_symlinked_directory(
    store: FileStore, layout: tuple[Path, Path]
) -> None:
    (layout[0] / "link").symlink_to(layout[1], target_is_directory=True)
    with pytest.raises(FileRefused) as refused:
        store.write("link/evil.txt", b"pwned", 1)
    assert refused.value.code == "symlink"
    assert files_under(layout[1]) == []


def test_it_refuses_to_write_through_a_symlinked_file(store: FileStore, layout: tuple[Path, Path]) -> None:
    target = layout[1] / "victim.txt"
    target.write_text("safe")
    (layout[0] / "victim.txt").symlink_to(target)
    with pytest.raises(FileRefused) as refused:
        store.write("victim.txt", b"pwned", 1)
    assert refused.value.code == "symlink"
    assert target.read_text() == "safe"


def test_it_refuses_to_delete_through_a_symlinked_directory(store: FileStore, layout: tuple[Path, Path]) -> None:
    (layout[1] / "keep.txt").write_text("keep")
    (layout[0] / "link").symlink_to(layout[1], target_is_directory=True)
    with pytest.raises(FileRefused):
        store.delete("link/keep.txt", 5)
    assert (layout[1] / "keep.txt").read_text() == "keep"


def test_it_writes_atomically_leaving_no_temporary_files(store: FileStore) -> None:
    store.write("src/app.js", b"one", 1)
    store.write("src/app.js", b"two", 2)
    assert files_under(store.root) == ["src", "src/app.js"]
    assert (store.root / "src/app.js").read_bytes() == b"two"


def test_it_ignores_a_lower_version_than_the_one_on_disk(store: FileStore) -> None:
    store.write("a.txt", b"new", 5)
    outcome, state = store.write("a.txt", b"old", 4)
    assert (outcome, state.version) == ("stale", 5)
    assert (store.root / "a.txt").read_bytes() == b"new"


def test_it_treats_a_repeated_version_with_the_same_content_as_unchanged(store: FileStore) -> None:
    store.write("a.txt", b"same", 3)
    assert store.write("a.txt", b"same", 3)[0] == "unchanged"


def test_the_same_content_at_a_newer_version_moves_the_version_without_touching_the_file(store: FileStore) -> None:
    store.write("a.txt", b"same", 3)
    target = store.root / "a.txt"
    os.utime(target, (1_000_000, 1_000_000))
    outcome, state = store.write("a.txt", b"same", 4)
    assert (outcome, state.version) == ("unchanged", 4)
    assert target.stat().st_mtime == 1_000_000
    assert store.write("a.txt", b"same", 4)[0] == "unchanged"
    assert store.write("a.txt", b"other", 4)[0] == "stale"


def test_it_lets_any_edit_replace_a_file_found_on_disk_at_boot(store: FileStore) -> None:
    (store.root / "index.html").write_text("boot")
    store.scan()
    assert store.entries["index.html"].version == 0
    assert store.write("index.html", b"edited", 1)[0] == "written"


def test_it_keeps_a_tombstone_so_a_late_update_does_not_resurrect_a_deleted_file(store: FileStore) -> None:
    store.write("a.txt", b"x", 1)
    assert store.delete("a.txt", 2)[0] == "deleted"
    assert store.write("a.txt", b"late", 1)[0] == "stale"
    assert not (store.root / "a.txt").exists()
    assert store.manifest()["a.txt"] == {"sha256": None, "version": 2}


def test_it_refuses_to_replace_a_directory_with_a_file(store: FileStore) -> None:
    (store.root / "src").mkdir()
    with pytest.raises(FileRefused) as refused:
        store.write("src", b"x", 1)
    assert refused.value.code == "is_directory"


def test_it_refuses_content_over_the_size_limit_before_decoding(store: FileStore) -> None:
    with pytest.raises(FileRefused) as refused:
        decode_content("x" * 1025, "utf-8", 1024)
    assert refused.value.code == "too_large"
    encoded = base64.b64encode(os.urandom(1025)).decode()
    with pytest.raises(FileRefused):
        decode_content(encoded, "base64", 1024)


def test_it_decodes_base64_and_refuses_garbage() -> None:
    assert decode_content(base64.b64encode(b"\x00\xff").decode(), "base64", 10) == b"\x00\xff"
    with pytest.raises(FileRefused) as refused:
        decode_content("not base64!", "base64", 100)
    assert refused.value.code == "invalid_content"


def test_it_scans_the_project_but_skips_node_modules_and_symlinks(store: FileStore, layout: tuple[Path, Path]) -> None:
    (store.root / "node_modules/x").mkdir(parents=True)
    (store.root / "node_modules/x/index.js").write_text("dep")
    (store.root / "src").mkdir()
    (store.root / "src/main.js").write_text("main")
    (store.root / "link.txt").symlink_to(layout[1] / "nothing")
    assert store.scan() == 1
    assert list(store.manifest()) == ["src/main.js"]


def test_it_lists_tracked_files_left_unnamed_outside_tool_folders_and_removes_them_at_their_version(
    store: FileStore,
) -> None:
    (store.root / "boot.html").write_text("boot")
    store.scan()
    for path in ("a.txt", "b.txt", "node_modules/x/i.js", "apps/web/.next/cache.json"):
        store.write(path, b"x", 3)
    store.delete("b.txt", 4)
    assert store.unlisted({"a.txt"}) == ["boot.html"]
    assert store.remove("boot.html") == FileState(0, None)
    assert not (store.root / "boot.html").exists()
    assert store.unlisted(set()) == ["a.txt"]

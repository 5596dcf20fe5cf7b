"""The renderer's file cache: an edit is seen by the next read, even one of the same size made
in the same instant as the read before it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from messages.files import FileCache


def age(path: Path, seconds: float) -> None:
    """Set the file's modification time `seconds` into the past."""
    then = path.stat().st_mtime_ns - int(seconds * 1e9)
    os.utime(path, ns=(then, then))


def test_a_settled_file_is_read_once(tmp_path: Path) -> None:
    path = tmp_path / "subject.txt"
    path.write_text("Hello")
    age(path, 10)
    files = FileCache()
    assert files.read(str(path)) == b"Hello"
    stamp = path.stat().st_mtime_ns
    # The same bytes on disk under the same time and size: held, not read (the cached copy is
    # what comes back even though the content changed, which only a forged time can do).
    path.write_text("Jello")
    os.utime(path, ns=(stamp, stamp))
    assert files.read(str(path)) == b"Hello"


def test_an_edit_is_seen_by_the_next_read(tmp_path: Path) -> None:
    path = tmp_path / "body.txt"
    path.write_text("Three steps")
    age(path, 10)
    files = FileCache()
    first = files.digest(str(path))
    path.write_text("Four steps!")  # a new time and size
    assert files.read(str(path)) == b"Four steps!"
    assert files.digest(str(path)) != first


def test_a_same_size_edit_in_the_same_tick_is_seen(tmp_path: Path) -> None:
    """A file changed less than a second before it was read is read again every time."""
    path = tmp_path / "shops.json"
    path.write_text('{"address": "Rua 12"}')
    stamp = path.stat().st_mtime_ns
    files = FileCache()
    assert files.json(str(path)) == {"address": "Rua 12"}
    path.write_text('{"address": "Rua 14"}')
    os.utime(path, ns=(stamp, stamp))  # the same tick as before: same time, same size
    assert files.json(str(path)) == {"address": "Rua 14"}


def test_broken_and_missing_files_say_so(tmp_path: Path) -> None:
    files = FileCache()
    broken = tmp_path / "products.json"
    broken.write_text("{not json")
    with pytest.raises(json.JSONDecodeError):
        files.json(str(broken))
    with pytest.raises(FileNotFoundError):
        files.read(str(tmp_path / "gone.txt"))

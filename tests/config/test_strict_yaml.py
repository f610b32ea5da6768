"""The stack-file reader: each key once (merge keys and anchors are not repeats), UTF-8 only."""

from __future__ import annotations

from pathlib import Path

import pytest

from vocabulary.errors import LlmopsError
from vocabulary.strict_yaml import duplicate_keys, read_utf8


def test_merge_keys_and_aliases_are_not_counted_as_repeats():
    text = ("base: &base {minSize: 0, maxSize: 3}\n"
            "pools:\n  - <<: *base\n    maxSize: 4\n  - *base\n")
    assert duplicate_keys(text) == []


def test_repeats_are_found_at_any_depth_with_every_line():
    text = ("config:\n  a: 1\n  b:\n    - {x: 1, x: 2}\n  a: 2\n  a: 3\n")
    assert duplicate_keys(text, strip_prefix="config.") == [
        "b[0].x: written twice (line 4); YAML would silently keep only the last: write it once",
        "a: written 3 times (lines 2, 5 and 6); YAML would silently keep only the last: write it once"]


def test_a_whole_second_config_block_is_named():
    assert duplicate_keys("config:\n  a: 1\nconfig:\n  b: 2\n") == [
        "config: written twice (lines 1 and 3); YAML would silently keep only the last: write it once"]


@pytest.mark.parametrize(("data", "expected"), [
    ("x: é\n".encode("utf-32"), "is UTF-32 text (it starts with a UTF-32 byte-order mark)"),
    ("x: é\n".encode("utf-16-be"), "has NUL bytes (line 1)"),
    ("a: 1\nx: é\n".encode("cp1252"), "byte 0xe9 on line 2 is not UTF-8"),
])
def test_other_encodings_are_named(tmp_path: Path, data: bytes, expected: str):
    path = tmp_path / "f.yaml"
    path.write_bytes(data)
    with pytest.raises(LlmopsError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        read_utf8(path, "f.yaml")


def test_utf8_with_or_without_a_byte_order_mark_is_read(tmp_path: Path):
    path = tmp_path / "f.yaml"
    path.write_bytes(b"\xef\xbb\xbfx: \xc3\xa9\n")
    assert read_utf8(path, "f.yaml") == "x: é\n"

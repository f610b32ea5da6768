"""Reading a YAML file the way a user means it: UTF-8 text, each key written once.

PyYAML keeps the last of two equal keys without a word, so a setting written twice (a pasted
block, a merge gone wrong) silently changes the plan; Python's `read_text` decodes with the
locale and a UTF-16 file (Windows editors) ends in a UnicodeDecodeError. Both are refused here
with the file, the key or the byte, and what is expected.
"""

from __future__ import annotations

import codecs
from pathlib import Path

import yaml

from vocabulary.errors import LlmopsError

#: Byte-order marks of the encodings editors save in besides UTF-8 (UTF-32 first: its
#: little-endian mark starts with UTF-16's).
FOREIGN_BOMS = ((codecs.BOM_UTF32_LE, "UTF-32"), (codecs.BOM_UTF32_BE, "UTF-32"),
                (codecs.BOM_UTF16_LE, "UTF-16"), (codecs.BOM_UTF16_BE, "UTF-16"))
MERGE_TAG = "tag:yaml.org,2002:merge"


def read_utf8(path: Path, source: str) -> str:
    """The file's text; a directory, an unreadable file or another encoding is an
    `LlmopsError` naming the file and what is expected (UTF-8; a UTF-8 BOM is accepted)."""
    if path.is_dir():
        raise LlmopsError(f"{source} is a directory, not a file")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise LlmopsError(f"{source} cannot be read: {exc.strerror or exc}") from None
    fix = "save it as UTF-8 (e.g. `iconv -f <its encoding> -t UTF-8`)"
    for bom, encoding in FOREIGN_BOMS:
        if data.startswith(bom):
            raise LlmopsError(f"{source} is {encoding} text (it starts with a {encoding} "
                              f"byte-order mark); it must be UTF-8: {fix}")
    if b"\x00" in data:
        line = data[:data.index(b"\x00")].count(b"\n") + 1
        raise LlmopsError(f"{source} has NUL bytes (line {line}): it looks like UTF-16 or UTF-32 "
                          f"text; it must be UTF-8: {fix}")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise LlmopsError(f"{source} is not UTF-8 text: byte 0x{data[exc.start]:02x} on line "
                          f"{line} is not UTF-8 (Latin-1 or Windows-1252?); it must be UTF-8: "
                          f"{fix}") from None


def duplicate_keys(text: str, strip_prefix: str = "") -> list[str]:
    """One problem per key written more than once in the same mapping, with its key path
    (without `strip_prefix`, e.g. "config.") and the lines it is on. Assumes valid YAML."""
    problems: list[str] = []
    _walk(yaml.compose(text, Loader=yaml.SafeLoader), "", problems, set())
    return [p.removeprefix(strip_prefix) for p in problems]


def _walk(node: yaml.Node | None, path: str, problems: list[str], seen: set[int]) -> None:
    if node is None or id(node) in seen:  # an alias repeats a node already walked
        return
    seen.add(id(node))
    if isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _walk(item, f"{path}[{index}]", problems, seen)
    elif isinstance(node, yaml.MappingNode):
        lines: dict[tuple[str, str], list[int]] = {}
        for key, value in node.value:
            if key.tag == MERGE_TAG or not isinstance(key, yaml.ScalarNode):
                continue  # `<<: *defaults` is overridden by design
            lines.setdefault((key.tag, key.value), []).append(key.start_mark.line + 1)
            _walk(value, f"{path}.{key.value}" if path else key.value, problems, seen)
        for (_, name), where in lines.items():
            if len(where) > 1:
                key_path = f"{path}.{name}" if path else name
                lines_on = sorted(set(where))  # a flow mapping repeats on one line
                shown = (f"line {lines_on[0]}" if len(lines_on) == 1 else "lines "
                         + ", ".join(map(str, lines_on[:-1])) + f" and {lines_on[-1]}")
                times = "twice" if len(where) == 2 else f"{len(where)} times"
                problems.append(f"{key_path}: written {times} ({shown}); YAML would "
                                "silently keep only the last: write it once")

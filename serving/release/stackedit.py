"""Edit one model's release settings in `Pulumi.<env>.yaml` without losing its comments.

The YAML is edited as text (PyYAML would drop every comment and reorder nothing else
predictably), one key block at a time. Every edit is then proven: the edited text is parsed
and must equal the original document with exactly the intended change applied, and it must
still pass the stack's schema. Anything the line editor cannot handle safely (flow-style
model lists, keys on the `- ` line) is an error that says what to change by hand.
"""

from __future__ import annotations

import copy
import difflib
import json
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from serving.release.errors import ReleaseError

MODELS_KEY = "llmops:models"
_DASH = re.compile(r"^(\s*)-(\s+)")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _significant(line: str) -> bool:
    stripped = line.strip()
    return bool(stripped) and not stripped.startswith("#")


def _block_end(lines: list[str], start: int, indent: int, stop: int) -> int:
    """First line after `start` (before `stop`) that is significant and indented <= indent."""
    for i in range(start + 1, stop):
        if _significant(lines[i]) and _indent(lines[i]) <= indent:
            return i
    return stop


def _model_item(lines: list[str], model: str, source: str) -> tuple[int, int, int]:
    """(first line, end line, key indent) of the model's entry in llmops:models."""
    header = next((i for i, line in enumerate(lines)
                   if line.strip().startswith(f"{MODELS_KEY}:") and _significant(line)), None)
    if header is None:
        raise ReleaseError(f"{source} has no {MODELS_KEY} block")
    rest = lines[header].strip()[len(MODELS_KEY) + 1:].split("#", 1)[0].strip()
    if rest:
        raise ReleaseError(f"{source}: {MODELS_KEY} is written in flow style ([...]); release "
                           "commands edit block-style lists only, so change it by hand")
    end = _block_end(lines, header, _indent(lines[header]), len(lines))
    items = [i for i in range(header + 1, end) if _DASH.match(lines[i]) and _significant(lines[i])]
    if not items:
        raise ReleaseError(f"{source}: {MODELS_KEY} has no entries")
    dash = _indent(lines[items[0]])
    items = [i for i in items if _indent(lines[i]) == dash]
    for n, first in enumerate(items):
        last = items[n + 1] if n + 1 < len(items) else end
        entry = yaml.safe_load("\n".join(line[dash:] for line in lines[first:last]))
        if isinstance(entry, list) and entry and isinstance(entry[0], dict) and entry[0].get("name") == model:
            match = _DASH.match(lines[first])
            return first, last, len(match.group(0))
    raise ReleaseError(f"{source}: no model {model!r} in {MODELS_KEY}")


def _key_block(lines: list[str], item: tuple[int, int, int], key: str) -> tuple[int, int] | None:
    first, last, indent = item
    if lines[first][indent:].startswith(f"{key}:"):
        raise ReleaseError(f"`{key}` is on the list item's `- ` line; move it to its own line "
                           "and run again")
    for i in range(first + 1, last):
        if _indent(lines[i]) == indent and lines[i][indent:].startswith(f"{key}:"):
            end = _block_end(lines, i, indent, last)
            while end - 1 > i and not lines[end - 1].strip():  # trailing blank lines stay
                end -= 1
            return i, end
    return None


def _models(document: Any) -> list[dict[str, Any]]:
    return document["config"][MODELS_KEY]


def _apply(text: str, source: str, model: str, edit_lines: Callable[[list[str], tuple], None],
           edit_data: Callable[[dict[str, Any]], None]) -> str:
    document = yaml.safe_load(text)
    lines = text.splitlines(keepends=True)
    item = _model_item([line.rstrip("\n") for line in lines], model, source)
    edit_lines(lines, item)
    new_text = "".join(lines)
    expected = copy.deepcopy(document)
    entry = next(m for m in _models(expected) if m.get("name") == model)
    edit_data(entry)
    if yaml.safe_load(new_text) != expected:
        raise ReleaseError(f"{source}: the edit of model {model!r} did not come out as intended; "
                           "make the change by hand (see docs/release.md)")
    return new_text


def remove_canary(text: str, source: str, model: str) -> str:
    """The stack text without the model's `canary:` block (the schema has no weight 0)."""
    def lines_edit(lines: list[str], item: tuple) -> None:
        block = _key_block([x.rstrip("\n") for x in lines], item, "canary")
        if block is None:
            raise ReleaseError(f"{source}: model {model!r} has no canary block; nothing to remove")
        del lines[block[0]:block[1]]

    return _apply(text, source, model, lines_edit, lambda entry: entry.pop("canary"))


def pin_registry(text: str, source: str, model: str, version: str, revision: str) -> str:
    """Point the model's stable `registry:` at a pinned version and revision."""
    flow = f"{{version: {json.dumps(version)}, revision: {json.dumps(revision)}}}"

    def lines_edit(lines: list[str], item: tuple) -> None:
        block = _key_block([x.rstrip("\n") for x in lines], item, "registry")
        if block is None:
            raise ReleaseError(f"{source}: model {model!r} has no `registry:` (blueGreen models are "
                               "released by flipping `active`, not by canary promotion)")
        lines[block[0]:block[1]] = [" " * item[2] + f"registry: {flow}\n"]

    def data_edit(entry: dict[str, Any]) -> None:
        entry["registry"] = {"version": version, "revision": revision}

    return _apply(text, source, model, lines_edit, data_edit)


def diff(old: str, new: str, path: str) -> str:
    return "".join(difflib.unified_diff(old.splitlines(keepends=True), new.splitlines(keepends=True),
                                        fromfile=f"a/{path}", tofile=f"b/{path}"))


def validate(text: str, stack: str) -> None:
    """The edited stack must still pass the schema (ConfigError otherwise)."""
    from serving.release.stack import load_stack

    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / f"Pulumi.{stack}.yaml").write_text(text)
        load_stack(stack, Path(tmp))

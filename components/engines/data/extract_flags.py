"""Regenerate the engines' flag lists from their upstream sources (not run by tests).

    python components/engines/data/extract_flags.py tgi  <launcher/src/main.rs>   > tgi-3.3.7.flags
    python components/engines/data/extract_flags.py vllm <unzipped wheel root>    > vllm-0.34.0.flags

TGI: every field of the launcher's `struct Args` with a clap `long` becomes `--field-name`.
vLLM: the literal option strings of every `add_argument` call in vllm/engine/arg_utils.py and
vllm/entrypoints/common/cli_args.py, plus the frontend dataclass fields that
`BaseFrontendArgs.add_cli_args` turns into `--field-name` (FrontendArgs, BaseFrontendArgs).
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path


def tgi_flags(main_rs: str) -> list[str]:
    body = re.search(r"^struct Args \{(.*?)^\}", main_rs, re.S | re.M).group(1)
    flags, pending = [], False
    for line in body.splitlines():
        line = line.strip()
        if line.startswith("#[clap("):
            pending = re.search(r"\blong\b", line) is not None
        elif pending and (m := re.match(r"([a-z_][a-z0-9_]*)\s*:", line)):
            flags.append("--" + m.group(1).replace("_", "-"))
            pending = False
    return flags


def _option_strings(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "add_argument":
            for arg in node.args:
                if isinstance(arg, ast.Constant) and str(arg.value).startswith("--"):
                    found.add(arg.value)
    return found


def _dataclass_fields(path: Path, classes: tuple[str, ...]) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ClassDef) and node.name in classes:
            for item in node.body:
                if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                    found.add("--" + item.target.id.replace("_", "-"))
    return found


def vllm_flags(root: Path) -> list[str]:
    pkg = root / "vllm"
    cli = pkg / "entrypoints" / "common" / "cli_args.py"
    flags = _option_strings(pkg / "engine" / "arg_utils.py") | _option_strings(cli)
    flags |= _dataclass_fields(cli, ("BaseFrontendArgs", "FrontendArgs"))
    return sorted(flags)


if __name__ == "__main__":
    engine, source = sys.argv[1], Path(sys.argv[2])
    print("\n".join(tgi_flags(source.read_text()) if engine == "tgi" else vllm_flags(source)))

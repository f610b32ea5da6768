"""Where `llmops plan` writes (--json FILE, --manifests DIR), checked before anything runs:
a bad target must fail before the plan has written half of its outputs."""

from __future__ import annotations

import errno
import tempfile
from pathlib import Path

from vocabulary.errors import LlmopsError
from vocabulary.stackfile import display_path


def check_json_target(path: Path) -> None:
    """A file in an existing directory: a typo in the directory is an error, not a new tree."""
    if path.is_dir():
        raise LlmopsError(f"--json {display_path(path)} is a directory; give a file name "
                          "such as plan.json")
    parent = path.parent
    if not parent.is_dir():
        what = "is not a directory" if parent.exists() else "does not exist"
        raise LlmopsError(f"--json {display_path(path)}: directory {display_path(parent)} {what}; "
                          "create it first or write elsewhere")
    if path.exists():
        try:
            with path.open("ab"):  # opens for writing without changing a byte
                pass
        except OSError as exc:
            raise LlmopsError(f"--json {display_path(path)} cannot be written ({_reason(exc)}); "
                              "write elsewhere") from None
    else:
        check_writable_directory(parent, f"--json {display_path(path)}")


def check_manifests_target(directory: Path) -> None:
    """A directory (created if missing, under an existing parent), never a file."""
    if directory.exists() and not directory.is_dir():
        raise LlmopsError(f"--manifests {display_path(directory)} is a file; give a directory "
                          "(the plan writes one YAML file per Kubernetes object into it)")
    if not directory.exists() and not directory.parent.is_dir():
        raise LlmopsError(f"--manifests {display_path(directory)}: directory "
                          f"{display_path(directory.parent)} does not exist; create it first")
    check_writable_directory(directory if directory.exists() else directory.parent,
                             f"--manifests {display_path(directory)}")


def check_writable_directory(directory: Path, option: str) -> None:
    """Create (and drop) an unnamed file in `directory`: the only sure test, for root too (a
    read-only mount, /proc) and for ACLs that `os.access` does not see. Leaves nothing."""
    try:
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as exc:
        # ENOENT for an existing directory: a pseudo file system (/proc, /sys) takes no files
        reason = ("its file system takes no new files" if exc.errno == errno.ENOENT
                  else _reason(exc))
        raise LlmopsError(f"{option}: cannot write in directory {display_path(directory)} "
                          f"({reason}); write elsewhere") from None


def _reason(exc: OSError) -> str:
    return (exc.strerror or str(exc)).lower()


def check_targets(json_file: Path | None, manifests_dir: Path | None) -> None:
    """Both of `llmops plan`'s output targets, before the plan runs."""
    if json_file is not None:
        check_json_target(json_file)
    if manifests_dir is not None:
        check_manifests_target(manifests_dir)

"""Writing files safely where other jobs and other users also write: up-front checks, atomic writes,
one-line messages for file-system errors.

Temporary files get a unique random name beside their target (two jobs never share one) and are created
with the default mode, so the user's umask decides who may read them (``tempfile.mkstemp`` would make them
private to the owner, which hides results from a team sharing a folder).
"""
from __future__ import annotations

import contextlib
import errno
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

from uasbench.errors import UasbenchError
from uasbench.paths import cache_root


def sibling_temp(path: Path) -> Path:
    """A hidden, unique name beside ``path`` for a file that is renamed onto ``path`` when complete."""
    return path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")


@contextlib.contextmanager
def atomic_file(path: Path) -> Iterator[Path]:
    """Yield a temporary path; move it onto ``path`` in one rename if the block succeeds, else delete it."""
    path = Path(path)
    tmp = sibling_temp(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(path: Path, text: str) -> None:
    with atomic_file(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def _nearest_existing(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path(path.anchor or ".")


def _folder_problem(folder: Path) -> str | None:
    """Why files cannot be written in ``folder`` (to be created if missing), in words; None if they can."""
    folder = folder.absolute()
    existing = _nearest_existing(folder)
    if not existing.is_dir():
        return "is a file, not a folder" if existing == folder else f"lies under the file {existing}"
    if not os.access(existing, os.W_OK | os.X_OK):
        return ("is not writable (permission denied)" if existing == folder
                else f"cannot be created: no permission to write in {existing}")
    return None


def check_output_folder(path: Path, what: str) -> None:
    """One line if ``path`` cannot be (created and) written as a folder; called before any data is read.

    ``what`` names the option or role in the message, e.g. ``--out``.
    """
    problem = _folder_problem(Path(path))
    if problem:
        raise UasbenchError(f"{what} {path} {problem}")


def check_output_file(path: Path, what: str) -> None:
    """One line if the file ``path`` cannot be written (a folder in the way, an unwritable folder or file)."""
    path = Path(path)
    if path.is_dir():
        raise UasbenchError(f"{what} {path} is a folder, not a file")
    problem = _folder_problem(path.parent)
    if problem:
        raise UasbenchError(f"{what} {path}: its folder {path.parent} {problem}")
    if path.exists() and not os.access(path, os.W_OK):
        raise UasbenchError(f"{what} {path}: the file exists and is read-only")


_REASONS = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is exceeded",
            errno.EROFS: "the file system is read-only", errno.EACCES: "permission denied",
            errno.EPERM: "operation not permitted", errno.ENOTDIR: "a part of the path is a file, not a folder",
            errno.EISDIR: "it is a folder, not a file", errno.ENOENT: "no such file or folder"}


def describe_os_error(exc: OSError) -> str:
    """One line for a file-system error: what failed, on which path, and why in words."""
    reason = _REASONS.get(exc.errno or -1, exc.strerror or type(exc).__name__)
    paths = [str(p) for p in (exc.filename, exc.filename2) if p is not None]
    target = f" {' -> '.join(paths)}" if paths else ""
    hint = ""
    if paths and _is_under(Path(paths[0]), cache_root()):
        hint = " (this is the uasbench cache: set UASBENCH_CACHE_DIR to a writable folder)"
    return (f"file system error on{target}: {reason}" if target else f"file system error: {reason}") + hint


def _is_under(path: Path, folder: Path) -> bool:
    try:
        path.absolute().relative_to(folder.absolute())
    except ValueError:
        return False
    return True

"""Writing files safely where other jobs and other users also write: up-front checks, atomic writes,
no-follow opens, one-line messages for file-system errors.

Everything a job writes in a results folder (work folders, checkpoints, the training lock, loss logs, run
folders, job logs, the grid's lock) is created through this module, which refuses a planted symbolic link
or hard link with one line naming it instead of writing through it:

- folders are made one component at a time and every component below the results folder must be a real
  folder, not a link (``make_folder``, ``refuse_links``);
- a new file is created with ``O_CREAT | O_EXCL | O_NOFOLLOW`` under a unique name and renamed onto its
  target (``atomic_write``): a rename replaces a link planted at the target and never writes through it;
- a file written in place (a log that grows, a lock) is opened with ``O_NOFOLLOW`` and refused when it has
  more than one hard link (``open_in_place``, ``locked``).

The checks and the opens are separate system calls, so a user who can write to the folder and wins a race
of microseconds could still swap a component in between; ``docs/how-to/sharing-results.md`` says what a
shared folder can and cannot protect against.

Temporary files get a unique random name beside their target (two jobs never share one) and are created
with the default mode, so the user's umask decides who may read them (``tempfile.mkstemp`` would make them
private to the owner, which hides results from a team sharing a folder).
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import secrets
import shutil
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from uasbench.errors import UasbenchError
from uasbench.paths import cache_root

_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
_LINK_WHY = "a planted link in a shared folder could send this job's files anywhere"


def sibling_temp(path: Path) -> Path:
    """A hidden, unique name beside ``path`` for a file that is renamed onto ``path`` when complete."""
    return path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")


# -- links ------------------------------------------------------------------------------------------

def _link_error(path: Path, kind: str = "a symbolic link") -> UasbenchError:
    return UasbenchError(f"{path} is {kind}: refused to write through it ({_LINK_WHY}); remove it")


def refuse_links(path: Path, root: Path) -> None:
    """One line if ``path`` is not inside ``root`` or if any existing component of it below ``root`` (``path``
    itself included) is a symbolic link. ``root`` itself may be a link: the user chose it."""
    path, root = Path(path).absolute(), Path(root).absolute()
    try:
        parts = path.relative_to(root).parts
    except ValueError:
        raise UasbenchError(f"{path} is not inside the results folder {root}: refused to write it") from None
    if ".." in parts:
        raise UasbenchError(f"{path} leaves the results folder {root} (..): refused to write it")
    current = root
    for part in parts:
        current = current / part
        try:
            mode = os.lstat(current).st_mode
        except FileNotFoundError:
            return
        if stat.S_ISLNK(mode):
            raise _link_error(current)


def make_folder(path: Path, root: Path) -> Path:
    """Create ``path`` (and missing parents) inside ``root``, refusing any component that is a link."""
    path, root = Path(path).absolute(), Path(root).absolute()
    refuse_links(path, root)
    root.mkdir(parents=True, exist_ok=True)
    current = root
    for part in path.relative_to(root).parts:
        current = current / part
        with _named(current):
            try:
                os.mkdir(current)
            except FileExistsError:
                pass
            mode = os.lstat(current).st_mode
        if stat.S_ISLNK(mode):
            raise _link_error(current)
        if not stat.S_ISDIR(mode):
            raise UasbenchError(f"{current} is a file, not a folder")
    return path


def _check_single(fd: int, path: Path) -> None:
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        raise UasbenchError(f"{path} is not a regular file: refused to write it")
    if info.st_nlink > 1:
        raise _link_error(path, f"a hard link ({info.st_nlink} names for one file)")


def _open_no_follow(path: Path, flags: int) -> int:
    try:
        return os.open(path, flags | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0), 0o666)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise _link_error(path) from None
        raise


def open_in_place(path: Path, *, append: bool = False) -> BinaryIO:
    """A binary file written where it is (a growing log), never through a link or into a file with another
    hard link; truncated unless ``append``. Wrap its writes in ``writing(path)`` so a full disk names it."""
    path = Path(path)
    with _named(path):
        fd = _open_no_follow(path, os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else 0))
    try:
        _check_single(fd, path)
        if not append:
            os.ftruncate(fd, 0)
    except BaseException:
        os.close(fd)
        raise
    return os.fdopen(fd, "ab" if append else "wb")


# -- atomic writes -----------------------------------------------------------------------------------

@contextlib.contextmanager
def atomic_write(path: Path) -> Iterator[BinaryIO]:
    """Yield a new binary file (created with O_EXCL | O_NOFOLLOW under a unique name beside ``path``); move it
    onto ``path`` in one rename if the block succeeds, else delete it. A rename replaces whatever name is at
    ``path`` (a planted link included) without writing through it. Disk-full errors name ``path``."""
    path = Path(path)
    tmp = sibling_temp(path)
    with writing(path):
        try:
            fd = os.open(tmp, _NEW, 0o666)
            with os.fdopen(fd, "wb") as handle:
                yield handle
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)


def write_bytes_atomic(path: Path, data: bytes) -> None:
    with atomic_write(path) as handle:
        handle.write(data)


def write_text_atomic(path: Path, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


# -- locks -------------------------------------------------------------------------------------------

@contextlib.contextmanager
def locked(path: Path, on_busy: Callable[[], None]) -> Iterator[None]:
    """Hold an exclusive OS lock (``flock``) on the file ``path`` (opened without following links; a killed
    holder releases it). When another process holds it, ``on_busy()`` is called first: it returns to wait
    for the lock, or raises to give up."""
    path = Path(path)
    with _named(path):
        fd = _open_no_follow(path, os.O_RDWR | os.O_CREAT)
    try:
        _check_single(fd, path)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            on_busy()
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


# -- checks before work starts -----------------------------------------------------------------------

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


# -- one line for a file-system error ----------------------------------------------------------------

_REASONS = {errno.ENOSPC: "the disk is full (no space left on device)",
            errno.EDQUOT: "the disk quota is exceeded",
            errno.EROFS: "the file system is read-only", errno.EACCES: "permission denied",
            errno.EPERM: "operation not permitted", errno.ENOTDIR: "a part of the path is a file, not a folder",
            errno.EISDIR: "it is a folder, not a file", errno.ENOENT: "no such file or folder"}
_FULL = (errno.ENOSPC, errno.EDQUOT)


def describe_os_error(exc: OSError) -> str:
    """One line for a file-system error: what failed, on which path, why in words, and a remedy if any."""
    reason = _REASONS.get(exc.errno or -1, exc.strerror or type(exc).__name__)
    paths = [str(p) for p in (exc.filename, exc.filename2) if p is not None]
    target = f" {' -> '.join(paths)}" if paths else ""
    hint = ""
    if paths and _is_under(Path(paths[0]), cache_root()):
        hint = " (this is the uasbench cache: set UASBENCH_CACHE_DIR to a writable folder with free space)"
    elif exc.errno in _FULL:
        hint = "; free some space or write to another folder"
    return (f"file system error on{target}: {reason}" if target else f"file system error: {reason}") + hint


def _os_error_of(exc: BaseException) -> OSError | None:
    """The OSError behind ``exc``: itself, or the one torch's zip writer swallowed into a RuntimeError
    ("unexpected pos" from inline_container) while writing to a Python file object."""
    seen = exc
    while seen is not None:
        if isinstance(seen, OSError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


@contextlib.contextmanager
def writing(path: Path) -> Iterator[None]:
    """Turn a file-system error while writing ``path`` into one line naming it (an OSError raised by a
    ``write`` carries no file name; torch reports a full disk as a RuntimeError)."""
    try:
        yield
    except UasbenchError:
        raise
    except (OSError, RuntimeError) as exc:
        cause = _os_error_of(exc)
        if cause is None:
            if isinstance(exc, RuntimeError) and _disk_nearly_full(Path(path).parent):
                cause = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            else:
                raise
        named = OSError(cause.errno, cause.strerror, str(path))  # the target, not its hidden temporary name
        raise UasbenchError(describe_os_error(named)) from None


@contextlib.contextmanager
def _named(path: Path) -> Iterator[None]:
    """Give an OSError without a file name the name ``path`` (for ``describe_os_error``)."""
    try:
        yield
    except OSError as exc:
        if exc.filename is None:
            raise OSError(exc.errno, exc.strerror, str(path)) from None
        raise


def _disk_nearly_full(folder: Path) -> bool:
    try:
        return shutil.disk_usage(folder).free < 1 << 20
    except OSError:
        return False


def _is_under(path: Path, folder: Path) -> bool:
    try:
        path.absolute().relative_to(folder.absolute())
    except ValueError:
        return False
    return True

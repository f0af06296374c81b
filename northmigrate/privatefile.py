"""Files only their owner may read: rejects, DLQ exports, resume state and its key.

Every file that holds records, or anything derived from them, is written through this
module, so the same rules hold everywhere:

- the file is created with mode 0600 (an existing one is set to 0600) before a byte is
  written to it;
- the last component of the path is never followed: a symbolic link there (a dangling one
  too) is refused, and so is a hard link (an existing file with more than one name), a file
  owned by another user, and anything that is not a regular file (a FIFO, a device, a
  directory). A FIFO cannot hang the open: it is opened non-blocking and then refused;
- the checks are made on the open descriptor (``fstat``), not only on the name, so a file
  swapped in between the check and the open is refused too.

For a file the operator names (``--rejects``, ``--export``) only the last component is
protected: a symbolic link among the parent directories is followed, as the operator may well
keep their work under one. The directories northmigrate keeps its own state in
(``private_dir``, ``check_dirs``: ``.northmigrate/``, ``.northmigrate/resume/``) are checked
on every component of a relative path, from the working directory down, before anything is
created, read or written there: a link (``.northmigrate -> ../elsewhere``), a file or
another user's directory at any of them is refused.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
import tempfile
from pathlib import Path
from typing import IO

from northmigrate.errors import InputError

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_HINT = "remove it, or choose another path"


_LINK = "it is a symbolic link (northmigrate does not follow links to private files)"


def _refusal(info: os.stat_result) -> str | None:
    """Why the file described by ``info`` may not be used, or None when it may."""
    mode = info.st_mode
    if stat.S_ISLNK(mode):
        return _LINK
    if stat.S_ISDIR(mode):
        return "it is a directory"
    if not stat.S_ISREG(mode):
        kind = "a FIFO" if stat.S_ISFIFO(mode) else "a device or socket"
        return f"it is {kind}, not a regular file"
    if info.st_uid != os.geteuid():
        return "it belongs to another user"
    if info.st_nlink > 1:
        return f"it is a hard link ({info.st_nlink} names for one file)"
    return None


def _check_name(path: Path, what: str, verb: str) -> bool:
    """Refuse what is at ``path`` before opening it; True when something is there."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise InputError(f"cannot use {what} {path}: {exc.strerror or exc}") from exc
    problem = _refusal(info)
    if problem:
        raise InputError(f"refusing to {verb} {what} {path}: {problem}", hint=_HINT)
    return True


def _open_checked(path: Path, what: str, flags: int, verb: str) -> int:
    """``os.open`` without following a link at ``path``, then the checks on the descriptor."""
    try:
        fd = os.open(path, flags | _NOFOLLOW | _NONBLOCK | _CLOEXEC, 0o600)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise InputError(f"refusing to {verb} {what} {path}: {_LINK}", hint=_HINT) from exc
        if exc.errno == errno.ENXIO:  # a FIFO with no reader, opened non-blocking
            fifo = "it is a FIFO, not a regular file"
            raise InputError(f"refusing to {verb} {what} {path}: {fifo}", hint=_HINT) from exc
        raise InputError(f"cannot {verb} {what} {path}: {exc.strerror or exc}") from exc
    try:
        problem = _refusal(os.fstat(fd))
        if problem:
            raise InputError(f"refusing to {verb} {what} {path}: {problem}", hint=_HINT)
        if _NONBLOCK:  # a regular file: back to ordinary blocking writes
            fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~_NONBLOCK)
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_private(path: Path, what: str, *, append: bool = False) -> IO[str]:
    """``path`` opened for writing text, mode 0600 before a byte is written.

    The file is created, or (``append`` False) an existing one is truncated, or (``append``
    True) written at its end. Refused with an InputError naming ``path``: a symbolic link
    (a dangling one too), a hard link, a file of another user, anything not a regular file.
    Only the last component of ``path`` is protected (see the module's docstring).
    """
    _check_name(path, what, "write")
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else 0)
    fd = _open_checked(path, what, flags, "write")
    try:
        os.fchmod(fd, 0o600)  # an existing file keeps its mode through O_CREAT: set it
        if not append:
            os.ftruncate(fd, 0)  # only now: a refused file is never truncated
    except OSError as exc:
        os.close(fd)
        raise InputError(f"cannot write {what} {path}: {exc.strerror or exc}") from exc
    return os.fdopen(fd, "a" if append else "w", encoding="utf-8")


def read_private(path: Path, what: str) -> bytes | None:
    """The bytes of a private file, or None when there is none. Refused like ``open_private``
    refuses; a file readable by others is set back to mode 0600."""
    if not _check_name(path, what, "read"):
        return None
    fd = _open_checked(path, what, os.O_RDONLY, "read")
    with os.fdopen(fd, "rb") as handle:
        try:
            if stat.S_IMODE(os.fstat(fd).st_mode) != 0o600:
                os.fchmod(fd, 0o600)
            return handle.read()
        except OSError as exc:
            raise InputError(f"cannot read {what} {path}: {exc.strerror or exc}") from exc


def _dir_refusal(info: os.stat_result) -> str:
    if stat.S_ISLNK(info.st_mode):
        return _LINK
    if not stat.S_ISDIR(info.st_mode):
        return "it is not a directory"
    if info.st_uid != os.geteuid():
        return "it belongs to another user"
    return ""


def check_dirs(path: Path, what: str) -> None:
    """Refuse (an InputError) a symbolic link, a non-directory or another user's directory
    at any existing component of the directory ``path``: every one of a relative path, from
    the working directory down; ``path`` itself for an absolute one. What does not exist yet
    is fine (``private_dir`` makes it)."""
    parts = path.parts
    if path.is_absolute():
        components = [path]
    else:
        components = [Path(*parts[:n]) for n in range(1, len(parts) + 1) if parts[n - 1] != ".."]
    for component in components:
        try:
            info = os.lstat(component)
        except FileNotFoundError:
            return  # nothing below it exists either
        except OSError as exc:
            raise InputError(f"cannot use {what} {path}: {exc.strerror or exc}") from exc
        problem = _dir_refusal(info)
        if problem:
            where = "" if component == path else f": {component}"
            raise InputError(f"refusing to use {what} {path}{where}: {problem}", hint=_HINT)


def private_dir(path: Path, what: str) -> Path:
    """The directory ``path``, made (with any missing parent) mode 0700; an existing one
    must be a real directory of this user, and is set to 0700. Every component of a
    relative ``path`` is checked first (``check_dirs``): nothing is made through a link."""
    check_dirs(path, what)
    missing: list[Path] = []
    probe = path
    while not os.path.lexists(probe) and probe != probe.parent:
        missing.append(probe)
        probe = probe.parent
    for directory in reversed(missing):
        try:
            os.mkdir(directory, 0o700)
        except FileExistsError:
            pass  # made meanwhile: checked below like any existing one
        except OSError as exc:
            raise InputError(f"cannot create {what} {directory}: {exc.strerror or exc}") from exc
    try:
        info = os.lstat(path)
    except OSError as exc:
        raise InputError(f"cannot use {what} {path}: {exc.strerror or exc}") from exc
    problem = _dir_refusal(info)
    if problem:
        raise InputError(f"refusing to use {what} {path}: {problem}", hint=_HINT)
    if stat.S_IMODE(info.st_mode) != 0o700:
        try:
            os.chmod(path, 0o700, follow_symlinks=False)
        except (OSError, NotImplementedError) as exc:
            raise InputError(f"cannot make {what} {path} private: {exc}") from exc
    return path


def replace_private(path: Path, data: bytes, what: str) -> None:
    """Write ``data`` to ``path`` atomically (the old file or the new one, never half of
    one), as a new mode-0600 file that replaces whatever name was there (a link is replaced,
    never followed). The directory must exist; ``private_dir`` makes it."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise InputError(f"cannot write {what} {path}: {exc.strerror or exc}") from exc
    try:
        with os.fdopen(fd, "wb") as handle:  # mkstemp: O_EXCL, mode 0600
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise InputError(f"cannot write {what} {path}: {exc.strerror or exc}") from exc

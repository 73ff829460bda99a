"""Writing output files atomically, and refusing input files that are not files.

Every file neuromesh writes (chip images, run outputs, Verilog, heat maps,
board build reports) goes through :func:`atomic_write`: the data is written
to a temporary file in the destination's folder and renamed over the
destination only once it is complete and flushed. A write that fails half-way
(a full disk, a file-size limit, an exception while producing the data)
leaves the previous file as it was and no temporary file behind.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path

from .chip import ChipError

__all__ = ["atomic_write", "write_bytes", "write_text", "check_output_path",
           "check_output_dir", "check_regular_file", "same_file"]


def check_output_path(path, what: str = "output") -> Path:
    """Check that ``path`` can be created before any work is done: its folder
    exists and it is not a folder itself. Raises :class:`ChipError`."""
    path = Path(path)
    if str(path) == "":
        raise ChipError(f"{what}: an empty file name")
    if path.is_dir():
        raise ChipError(f"{what} {path}: is a folder, not a file")
    folder = path.parent
    if not folder.is_dir():
        raise ChipError(f"{what} {path}: the folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise ChipError(f"{what} {path}: the folder {folder} is not writable")
    return path


def check_output_dir(path, what: str = "output") -> Path:
    """Check that the folder ``path`` can hold new files before any work is
    done: it is a writable folder, or it does not exist yet and its nearest
    existing parent is a writable folder (it is created later, with its
    missing parents). Raises :class:`ChipError`."""
    path = Path(path)
    if str(path) == "":
        raise ChipError(f"{what}: an empty folder name")
    if path.exists():
        if not path.is_dir():
            raise ChipError(f"{what} {path}: is a file, not a folder")
        if not os.access(path, os.W_OK | os.X_OK):
            raise ChipError(f"{what} {path}: the folder is not writable")
        return path
    parent = path.absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise ChipError(f"{what} {path}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ChipError(f"{what} {path}: cannot create it, the folder {parent} is not writable")
    return path


@contextlib.contextmanager
def atomic_write(path, mode: str = "wb"):
    """Context manager yielding a file object whose contents replace ``path``
    when the block ends without an exception (temp file + fsync + rename).

    The new file gets the permissions of the file it replaces, or the
    default ones (0666 minus the umask) for a new file.
    """
    path = Path(path)
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write: mode {mode!r} must be 'w' or 'wb'")
    fd, tmp = tempfile.mkstemp(dir=path.parent or ".", prefix=f".{path.name}.",
                               suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        try:
            perms = stat.S_IMODE(os.stat(path).st_mode)
        except FileNotFoundError:
            umask = os.umask(0)
            os.umask(umask)
            perms = 0o666 & ~umask
        os.chmod(tmp, perms)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_bytes(path, data: bytes) -> None:
    """Replace ``path`` by ``data`` atomically."""
    with atomic_write(path, "wb") as f:
        f.write(data)


def write_text(path, text: str) -> None:
    """Replace ``path`` by ``text`` (UTF-8) atomically."""
    write_bytes(path, text.encode())


def check_regular_file(path, what: str = "input") -> Path:
    """Refuse what is not a regular file (a folder, a FIFO, a device such as
    ``/dev/zero``) before reading it: reading those blocks or never ends."""
    path = Path(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise ChipError(f"{what} {path}: no such file") from None
    except OSError as e:
        raise ChipError(f"{what} {path}: {e.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        kind = ("a folder" if stat.S_ISDIR(st.st_mode) else
                "a FIFO" if stat.S_ISFIFO(st.st_mode) else
                "a device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) else
                "a socket" if stat.S_ISSOCK(st.st_mode) else "not a regular file")
        raise ChipError(f"{what} {path}: is {kind}, not a regular file")
    return path


def same_file(a, b) -> bool:
    """``a`` and ``b`` name one existing file (also through links)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False

"""Output files written atomically: a temporary file in the destination's
folder, renamed over it when complete, so an interrupted run never leaves a
half-written npz or plot behind."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

__all__ = ["write_atomic", "save_npz", "save_figure"]


def write_atomic(path, write):
    """Call ``write(file object)`` on a temporary file next to ``path`` and
    rename it to ``path``; on any error the temporary file is removed and
    ``path`` is untouched."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp",
                               dir=path.parent if str(path.parent) else ".")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        # mkstemp makes the file private; give it the permissions open() would.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_npz(path, **arrays):
    """``numpy.savez_compressed`` to ``path``, atomically."""
    write_atomic(path, lambda f: np.savez_compressed(f, **arrays))


def save_figure(fig, path, **kwargs):
    """``fig.savefig`` to ``path``, atomically (the format from its suffix)."""
    fmt = Path(path).suffix.lstrip(".") or "png"
    write_atomic(path, lambda f: fig.savefig(f, format=fmt, **kwargs))

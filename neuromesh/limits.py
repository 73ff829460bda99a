"""How much memory a run may take, and the refusal when it would take more.

The emulator estimates the memory a chip image and a run need from the
image's tables alone, before allocating anything, and compares the figure
with a limit: ``max_memory`` bytes, by default :func:`default_max_memory`
(half of the machine's physical memory). ``neuromesh run``/``example`` take
it as ``--max-memory`` (e.g. ``4G``, ``512M``).
"""

from __future__ import annotations

import os
import re

from .chip import ChipError
from .image import ImageError

__all__ = ["MemoryLimitError", "ImageTooLargeError", "default_max_memory", "parse_size",
           "format_size", "check_memory", "MEMORY_FRACTION"]

#: Share of the machine's physical memory a run may use by default.
MEMORY_FRACTION = 0.5


class MemoryLimitError(ChipError):
    """A run would need more memory than it is allowed (the estimate and the
    limit are in the message)."""


class ImageTooLargeError(ImageError, MemoryLimitError):
    """A chip image whose tables expand beyond the memory limit even for one
    batch row (a legal but hostile image: e.g. overlapping fan-out lists that
    reach long synapse runs many times over)."""


def physical_memory() -> int:
    """Bytes of physical memory of this machine (0 if unknown)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):   # pragma: no cover - non-POSIX
        return 0


def default_max_memory() -> int:
    """The default limit: :data:`MEMORY_FRACTION` of the physical memory
    (4 GiB where the machine does not say)."""
    total = physical_memory()
    return int(total * MEMORY_FRACTION) if total else 4 << 30


_UNITS = {"": 1, "B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size(text: str) -> int:
    """``"512M"``, ``"4G"``, ``"1.5G"``, ``"1000000"`` (bytes) -> bytes (K, M, G,
    T are powers of 1024; an optional ``iB``/``B`` suffix is accepted)."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([KMGT]?)(?:i?B)?\s*", str(text), re.IGNORECASE)
    if not m:
        raise ValueError(f"cannot read {text!r} as a size; use e.g. 512M, 4G or a byte count")
    value = float(m[1]) * _UNITS[m[2].upper()]
    if not value >= 1:
        raise ValueError(f"size {text!r} must be at least 1 byte")
    return int(value)


def format_size(n: float) -> str:
    """Bytes as a short human figure (``"1.5 GiB"``)."""
    for unit, scale in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{int(n)} B"


def check_memory(needed: float, max_memory: int | None, what: str, detail: str = "",
                 error=MemoryLimitError) -> None:
    """Raise ``error`` when ``needed`` bytes exceed ``max_memory`` (None: the
    default limit)."""
    limit = default_max_memory() if max_memory is None else int(max_memory)
    if needed > limit:
        whence = ("--max-memory" if max_memory is not None else
                  f"the default, {MEMORY_FRACTION:.0%} of this machine's memory; "
                  f"see --max-memory")
        raise error(f"{what} needs an estimated {format_size(needed)}"
                    f"{f' ({detail})' if detail else ''}, more than the memory limit "
                    f"{format_size(limit)} ({whence})")

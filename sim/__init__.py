"""Co-simulation of the chip's RTL against the emulator.

:mod:`~neuromesh.sim.amaranth_transport` lets the host driver talk to the
RTL in Amaranth's simulator; :mod:`~neuromesh.sim.randomgen` makes random
chip images and inputs for differential tests. cocotb + Verilator come next.
"""

"""Co-simulation of the generated RTL against the emulator (Amaranth simulator, cocotb + Verilator). Not built yet: see the co-simulation issue."""

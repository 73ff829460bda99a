"""Amaranth 0.5 HDL of the neuromesh chip (cores, mesh router, timestep barrier, host link). Not built yet: see the RTL issue."""

"""FPGA board targets, bitstream builds and the UART host driver.

Not built yet: see the boards issue.
"""

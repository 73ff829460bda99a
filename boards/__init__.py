"""FPGA board targets, bitstream builds and the UART host driver.

* :mod:`neuromesh.boards.top`: the boards (iCEBreaker, ULX3S-85F), their
  default geometries and RTL options, and the top level with UART pins;
* :mod:`neuromesh.boards.build`: bitstreams with the YoWASP tools and the
  utilization/Fmax report (``neuromesh build``);
* :mod:`neuromesh.boards.serial`: the host driver over a serial port, with
  the emulator's API (``neuromesh run --backend board``).

See docs/boards.md.
"""

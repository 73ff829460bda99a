"""Amaranth 0.5 HDL of the neuromesh chip.

:class:`~neuromesh.rtl.chip.Chip` is the top level: a mesh
(:mod:`~neuromesh.rtl.mesh`, :mod:`~neuromesh.rtl.router`) of cores
(:mod:`~neuromesh.rtl.core`, :mod:`~neuromesh.rtl.neuron`), the timestep
controller (:mod:`~neuromesh.rtl.controller`) and the host link
(:mod:`~neuromesh.rtl.hostlink`), all built from one
:class:`neuromesh.chip.Geometry`.
"""

"""Compiler from trained SNNs (Python network API, NIR) to chip images.

Not built yet: see the compiler issue.
"""

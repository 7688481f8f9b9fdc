"""When a stage's Numba kernel takes over from its uncompiled path, in one process.

Several stages have two exact paths: an uncompiled one (NumPy, Pillow, a plain-Python
twin) and a Numba kernel that is faster per call but costs its compilation on a first
run. A small run (the bundled example) stays on the uncompiled path; a large one pays the
compilation once and gains on every later call. :class:`KernelAfter` counts a process's
calls of one stage; both paths give the same results (each stage's tests compare them).
"""

from __future__ import annotations

__all__ = ["KernelAfter"]


class KernelAfter:
    """The first ``n`` calls of a stage take its uncompiled path, later ones its kernel.

    Example
    -------
    >>> turn = KernelAfter(2)
    >>> [turn() for _ in range(4)]
    [False, False, True, True]
    """

    def __init__(self, n: int) -> None:
        self.n = n
        self.calls = 0

    def __call__(self) -> bool:
        """True when this call should use the kernel."""
        if self.calls < self.n:
            self.calls += 1
            return False
        return True

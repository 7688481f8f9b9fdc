"""The first calls of a stage stay uncompiled; the kernel takes over after ``n``."""

from __future__ import annotations

from dpeval._kernel_turn import KernelAfter


def test_first_n_calls_take_the_uncompiled_path():
    turn = KernelAfter(3)
    assert [turn() for _ in range(5)] == [False, False, False, True, True]
    assert turn.calls == 3
    assert KernelAfter(0)()  # n = 0: the kernel from the first call

"""Where the geodesic field kernel spends its time, instruction by instruction.

Usage: python benchmarks/perf_kernel.py [--seconds 6] [--top 20] [--kernel field|targets]

``perf`` sees Numba's compiled code only as anonymous ``[JIT]`` addresses. This script
computes fields in a loop, records itself with ``perf record -p``, reads the compiled
kernel's machine code from its entry point (``ctypes.string_at``; the hot loop
``_expand`` is inlined into it), disassembles it with ``objdump --adjust-vma`` and prints
the hottest addresses with their instructions. A sample usually lands on the instruction
*after* a stalled load, so read each line together with the one above it (``-B``
context is printed).

Needs Linux ``perf`` and binutils' ``objdump`` (``apt-get install linux-perf binutils``);
the machine's ``perf_event_paranoid`` must allow recording one's own process. It found the
cache misses that the hot loop's prefetch now hides (``dpeval/geodesic/_kernels.py``).
"""

from __future__ import annotations

import argparse
import ctypes
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

CODE_BYTES = 32_000  # more than the kernel's machine code on x86-64


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=6.0, help="recording time")
    ap.add_argument("--top", type=int, default=20, help="addresses to print")
    ap.add_argument("--kernel", choices=("field", "targets"), default="field")
    args = ap.parse_args()
    missing = [t for t in ("perf", "objdump") if shutil.which(t) is None]
    if missing:
        print(f"perf_kernel: {', '.join(missing)} not found; install linux-perf / binutils")
        return 2

    from dpeval.geodesic import _kernels
    from dpeval.geodesic.mesh import Mesh
    from dpeval.geodesic.solver import _field_work
    from dpeval.template import load_template

    t = load_template("open")
    m = Mesh(t.vertices, t.faces)
    nv = m.n_vertices
    work = _field_work(m)
    targets = np.random.default_rng(0).choice(nv, 30).astype(np.int32)

    def one(s: int) -> None:
        if args.kernel == "field":
            _kernels.geodesic_field(s, *m.kernel_args(), *work, nv)
        else:
            _kernels.geodesic_targets(s, *m.kernel_args(), *work, targets, m.stop_margin)

    one(1)  # compile or load
    disp = _kernels.geodesic_field if args.kernel == "field" else _kernels.geodesic_targets
    (cres,) = disp.overloads.values()
    base = cres.library.get_pointer_to_function(cres.fndesc.llvm_func_name)
    tmp = Path(tempfile.mkdtemp(prefix="perf_kernel_"))
    (tmp / "kernel.bin").write_bytes(ctypes.string_at(base, CODE_BYTES))

    stop = threading.Event()
    count = [0]

    def loop() -> None:
        s = 0
        while not stop.is_set():
            one(s % nv)
            s += 7
            count[0] += 1

    worker = threading.Thread(target=loop, daemon=True)
    worker.start()
    time.sleep(0.5)
    data = tmp / "perf.data"
    rec = subprocess.run(
        ["perf", "record", "-q", "-p", str(os.getpid()), "-o", str(data), "--",
         "sleep", str(args.seconds)],
        capture_output=True, text=True,
    )  # fmt: skip
    stop.set()
    worker.join()
    if rec.returncode != 0 or not data.exists():
        print(f"perf_kernel: perf record failed: {rec.stderr.strip()[:300]}")
        return 2
    report = subprocess.run(
        ["perf", "report", "-i", str(data), "--stdio", "--sort=sym"],
        capture_output=True, text=True,
    ).stdout  # fmt: skip
    asm = subprocess.run(
        ["objdump", "-D", "-b", "binary", "-m", "i386:x86-64", f"--adjust-vma={base:#x}",
         str(tmp / "kernel.bin")],
        capture_output=True, text=True,
    ).stdout.splitlines()  # fmt: skip
    where = {}
    for i, line in enumerate(asm):
        hit = re.match(r"\s+([0-9a-f]+):", line)
        if hit:
            where[int(hit.group(1), 16)] = i
    print(f"kernel {disp.py_func.__name__} at {base:#x}; {count[0]} fields in {args.seconds:g} s")
    print(f"({1e3 * args.seconds / max(count[0], 1):.2f} ms per field while recording)\n")
    shown = 0
    for line in report.splitlines():
        hit = re.match(r"\s+([\d.]+)%\s+\S*\s*\[\.\]\s+0x([0-9a-f]+)", line)
        if not hit:
            continue
        pct, addr = float(hit.group(1)), int(hit.group(2), 16)
        if addr not in where:
            continue  # outside the kernel (Python, NumPy, the threading layer)
        i = where[addr]
        print(f"{pct:5.2f}%  {asm[i].strip()}")
        for j in (i - 2, i - 1):
            print(f"        {asm[j].strip()}")
        shown += 1
        if shown == args.top:
            break
    print(f"\nfiles: {tmp}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

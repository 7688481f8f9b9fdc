"""Time ``dpeval score --metric all`` as a user meets it: first-ever, cold, warm.

Usage: python benchmarks/score.py [--images 1500] [--people 2300] [--workers 2]
       [--skip-cold] [--repeat 2]

Prints the table of issue 14 for the current code, each row a fresh process running the
command line (``dpeval score PREDS GT --metric all -q``), wall time and peak RSS:

* the README's example (``examples/``): first-ever run (empty Numba cache, empty dpeval
  cache: every kernel it uses is compiled) and warm;
* a COCO-minival-sized case on the open template (built once into benchmarks/.cache/ by
  ``_minival.py``): first-ever (empty Numba and dpeval caches: kernels compiled and the
  geodesic table built), cold (kernels cached, no geodesic table), warm (both cached).

``--skip-cold`` leaves out the two minival rows that build the geodesic table (a minute
or more on 2 cores). The load average is printed with each row: the machine may be
shared, so compare rows of one run, not runs of different days.

``--against-official densepose_cocoeval.py`` (a file the user has; dpeval never downloads
or copies it) adds, for the last case (minival, or the example with ``--skip-minival``),
one row per official mode (GPSm, GPS, IOU: ``evaluate(calc_mode=...)``, each a fresh
process that loads the GT with pycocotools, ``loadRes`` the predictions, builds the
evaluator, whose constructor reads the eval data files, and runs ``evaluate()``,
``accumulate()``, ``summarize()``), their total, and the ratio official / dpeval warm.
The eval data directory is ``--official-data DIR`` or, by default, the open template
exported in the official layout (``benchmarks/.cache/official_open/``: ``SMPL_subdiv.mat``,
``SMPL_SUBDIV_TRANSFORM.mat``, ``Pdist_matrix.pkl`` and an HDF5 ``Pdist_matrix.mat``), so
that both evaluators score on the same template. See ``--help`` for what the driver
assumes about the official interface.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

CHILD = r"""
import json, resource, sys, time
t0 = time.perf_counter()
from dpeval.cli import main
t_import = time.perf_counter() - t0
rc = main(sys.argv[1:])
print(json.dumps({"rc": rc, "seconds": time.perf_counter() - t0, "import_s": t_import,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def run(argv: list[str], numba_cache: str, dpeval_cache: str) -> dict:
    """One fresh ``dpeval`` process; its wall time (measured outside) and peak RSS."""
    env = {**os.environ, "NUMBA_CACHE_DIR": numba_cache, "DPEVAL_CACHE_DIR": dpeval_cache}
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", CHILD, *argv],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        cwd=tempfile.gettempdir(),  # import the installed dpeval, not a checkout by accident
    )
    wall = time.perf_counter() - t0
    r = json.loads(out.stdout.strip().splitlines()[-1])
    if r["rc"] != 0:
        raise SystemExit(f"dpeval {' '.join(argv)} exited {r['rc']}: {out.stderr[-500:]}")
    r["wall"] = wall
    r["load"] = load
    return r


OFFICIAL_CHILD = r"""
import importlib.util, inspect, io, json, os, resource, sys, time, types
cfg = json.loads(sys.argv[1])
import numpy as np
if cfg["shims"]:  # Python 2 / old-NumPy leftovers of the official file (spec section 8.11)
    for name, typ in (("int", int), ("float", float), ("bool", bool), ("object", object),
                      ("str", str), ("long", int), ("unicode", str)):
        if name not in np.__dict__:
            setattr(np, name, typ)
    _linspace = np.linspace
    def linspace(start, stop, num=50, *a, **k):
        if isinstance(num, float) and num.is_integer():
            num = int(num)
        return _linspace(start, stop, num, *a, **k)
    np.linspace = linspace
    try:
        import StringIO  # noqa: F401
    except ImportError:
        sys.modules["StringIO"] = types.SimpleNamespace(StringIO=io.BytesIO)
        sys.modules["cStringIO"] = sys.modules["StringIO"]
t0 = time.perf_counter()
from pycocotools.coco import COCO
spec = importlib.util.spec_from_file_location("densepose_cocoeval", cfg["module"])
mod = importlib.util.module_from_spec(spec)
sys.modules["densepose_cocoeval"] = mod
sys.path.insert(0, os.path.dirname(os.path.abspath(cfg["module"])))
spec.loader.exec_module(mod)
cls = getattr(mod, cfg["cls"])
t_import = time.perf_counter() - t0

def decode_py3(dt):
    # challenge format (spec 1.2): base64 -> PNG -> (H*W, 3) -> channels first -> uv_shape
    import base64
    from PIL import Image
    png = base64.b64decode(dt["uv_data"])
    rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    return np.moveaxis(rgb.reshape(-1, 3), 1, 0).reshape(dt["uv_shape"])

orig = getattr(cls, "_decodeUvData", None)
if cfg["shims"] and callable(orig):
    def _decodeUvData(self, *a, **k):
        try:
            return orig(self, *a, **k)
        except (AttributeError, NameError, TypeError, ImportError):
            dt = next((x for x in (*a, *k.values()) if isinstance(x, dict) and "uv_data" in x),
                      None)
            if dt is None:
                raise
            dt["uv"] = decode_py3(dt)
            return dt["uv"]
    cls._decodeUvData = _decodeUvData

t1 = time.perf_counter()
gt = COCO(cfg["gt"])
dt = gt.loadRes(cfg["preds"])
t_load = time.perf_counter() - t1
params = list(inspect.signature(cls.__init__).parameters.values())[1:]
values = {"gt": gt, "dt": dt, "ioutype": cfg["iou_type"], "data": cfg["data"]}
bound = {}  # constructor parameter -> what it gets, guessed from its name
for p in params:
    n = p.name.lower()
    key = ("ioutype" if "ioutype" in n else "gt" if "gt" in n else "dt" if "dt" in n
           else "data" if any(w in n for w in ("dir", "data", "path")) else None)
    if key and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
        bound[p.name] = key
t2 = time.perf_counter()
if {"gt", "dt"} <= set(bound.values()):
    ev = cls(**{name: values[key] for name, key in bound.items()})
    used = [f"{name}={key}" for name, key in bound.items()]
else:
    ev = cls(gt, dt, cfg["iou_type"])
    used = ["(cocoGt, cocoDt, iouType) positional"]
t_init = time.perf_counter() - t2
has_mode = "calc_mode" in inspect.signature(ev.evaluate).parameters
t3 = time.perf_counter()
ev.evaluate(calc_mode=cfg["mode"]) if has_mode else ev.evaluate()
t_eval = time.perf_counter() - t3
ev.accumulate()
ev.summarize()
stats = getattr(ev, "stats", None)
ap = float(stats[0]) if stats is not None and len(stats) else None
print(json.dumps({"seconds": time.perf_counter() - t0, "import_s": t_import, "load_s": t_load,
                  "init_s": t_init, "evaluate_s": t_eval, "ap": ap, "has_mode": has_mode,
                  "ctor": used,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


OFFICIAL_HELP = """\
path of the official evaluator, DensePose's densepose_cocoeval.py (a file you have; dpeval
never downloads it): adds one fresh-process row per mode, their total and the ratio
official / dpeval warm. The spec does not pin the whole interface, so the driver is
tolerant: it imports the file by path (its folder on sys.path), loads the GT with
pycocotools COCO() and the predictions with loadRes(); it binds the constructor's
parameters by name (*gt* -> the COCO GT, *dt* -> the results, *ioutype* -> --official-iou-type,
*dir*/*data*/*path* -> the eval data directory) or, if that fails, calls
cls(cocoGt, cocoDt, iouType); it passes evaluate(calc_mode=MODE) when evaluate() takes
calc_mode, else runs a single evaluate() (the Detectron version has no modes); the
child's working directory holds DensePoseData/eval_data/ -> the data directory, for
versions that read fixed relative paths. Python 2 / old-NumPy shims (np.int & co.,
a float linspace count, a StringIO module, a Python 3 fallback for _decodeUvData)
are installed unless --no-official-shims."""


def write_pdist_mat(path: Path, table) -> None:
    """``Pdist_matrix.mat`` as the 2019 evaluator reads it: HDF5 (MATLAB v7.3 is HDF5),
    dataset ``Pdist_matrix`` of shape (N, 1), float32 (the layout of the golden case the
    official code ran on, tests/data/official_golden)."""
    import h5py

    tmp = path.with_name(path.name + ".tmp")
    with h5py.File(tmp, "w") as fh:
        fh.create_dataset("Pdist_matrix", data=table.reshape(-1, 1))
    os.replace(tmp, path)


def export_official_layout(template, directory: Path, solver) -> list[Path]:
    """The template in the official file layout, with its distance table twice:
    ``Pdist_matrix.pkl`` (detectron2's reader) and ``Pdist_matrix.mat`` (the 2019 one)."""
    import numpy as np

    from dpeval.template import export_template

    table = np.asarray(solver.condensed_table(), dtype=np.float32)
    files = export_template(template, directory, distances=table)
    write_pdist_mat(directory / "Pdist_matrix.mat", table)
    return [*files, directory / "Pdist_matrix.mat"]


def official_data_dir(given: str | None) -> Path:
    """The official evaluator's eval data directory: the user's, or the open template
    exported once into benchmarks/.cache/official_open (rebuilt when the template or the
    engine changes)."""
    if given:
        d = Path(given).expanduser()
        if not d.is_dir():
            raise SystemExit(f"--official-data {d}: not a directory")
        return d
    from dpeval.geodesic import ENGINE_VERSION, GeodesicSolver
    from dpeval.template import load_template

    template = load_template("open")
    out = HERE / ".cache" / "official_open"
    stamp = {"template_sha256": template.checksum, "engine": ENGINE_VERSION}
    names = ("SMPL_subdiv.mat", "SMPL_SUBDIV_TRANSFORM.mat", "Pdist_matrix.pkl", "Pdist_matrix.mat")
    try:
        fresh = json.loads((out / "stamp.json").read_text()) == stamp
    except (OSError, ValueError):
        fresh = False
    if not (fresh and all((out / n).is_file() for n in names)):
        print(f"exporting the open template in the official layout to {out} ...", flush=True)
        out.mkdir(parents=True, exist_ok=True)
        solver = GeodesicSolver(template, cache_dir=HERE / ".cache" / "dpeval")
        export_official_layout(template, out, solver)
        (out / "stamp.json").write_text(json.dumps(stamp))
    return out


def run_official(cfg: dict) -> dict:
    """One fresh process running the official evaluator in one mode (see OFFICIAL_CHILD)."""
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="dpeval-official-") as work:
        (Path(work) / "DensePoseData").mkdir()
        (Path(work) / "DensePoseData" / "eval_data").symlink_to(Path(cfg["data"]).resolve())
        t0 = time.perf_counter()
        out = subprocess.run(
            [sys.executable, "-c", OFFICIAL_CHILD, json.dumps(cfg)],
            capture_output=True,
            text=True,
            cwd=work,
        )
        wall = time.perf_counter() - t0
    if out.returncode != 0:
        raise SystemExit(
            f"the official evaluator ({cfg['module']}, mode {cfg['mode']}) failed with exit "
            f"{out.returncode}:\n{out.stderr[-2000:]}"
        )
    r = json.loads(out.stdout.strip().splitlines()[-1])
    return {**r, "wall": wall, "load": load}


def official_rows(args: argparse.Namespace, case: tuple[Path, Path, str], warm: dict) -> None:
    """Rows of the official evaluator on ``case`` (preds, gt, name), then the ratios."""
    preds, gt, name = case
    data = official_data_dir(args.official_data)
    cfg = {"module": str(Path(args.against_official).resolve()), "cls": args.official_class}
    cfg.update(gt=str(gt), preds=str(preds), data=str(data), iou_type=args.official_iou_type)
    cfg.update(shims=not args.no_official_shims)
    runs = []
    for mode in args.official_modes.split(","):
        r = run_official({**cfg, "mode": mode})
        if not r["has_mode"]:
            row(f"{name}, official (evaluate() has no calc_mode)", r)
            runs.append((None, r))
            break
        row(f"{name}, official {mode}", r)
        runs.append((mode, r))
    total = {k: sum(r[k] for _, r in runs) for k in ("wall", "import_s")}
    total["load"] = os.getloadavg()[0]
    total["peak_rss_mb"] = max(r["peak_rss_mb"] for _, r in runs)
    n = len(runs)
    row(f"{name}, official total ({n} process{'es' if n > 1 else ''}, RSS max)", total)
    print()
    print(
        f"official / dpeval warm: {total['wall'] / warm['wall']:.1f}x wall, "
        f"{total['peak_rss_mb'] / warm['peak_rss_mb']:.1f}x peak RSS (dpeval computes every "
        "metric in one run)"
    )
    print(f"official data: {data}; constructor: {', '.join(runs[0][1]['ctor'])}")
    ours = {}
    if warm.get("json") and Path(warm["json"]).is_file():
        ours = json.loads(Path(warm["json"]).read_text()).get("metrics", {})
    key = {"GPSm": "gpsm", "GPS": "gps_perpart", "IOU": "iou"}
    for mode, r in runs:
        mine = ours.get(key.get(mode or "GPS", ""), {}).get("AP")
        print(
            f"  {mode or 'evaluate()'}: load {r['load_s']:.1f} s, constructor {r['init_s']:.1f} s, "
            f"evaluate {r['evaluate_s']:.1f} s; AP official {_ap(r['ap'])}, dpeval {_ap(mine)}"
        )


def _ap(x: float | None) -> str:
    return "-" if x is None else f"{x:.4f}"


def row(label: str, r: dict) -> None:
    print(
        f"| {label:<64} | {r['wall']:7.2f} s | {r['peak_rss_mb']:6.0f} MB | "
        f"{r['import_s']:5.2f} s | {r['load']:5.2f} |"
    )


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--images", type=int, default=1500)
    ap.add_argument("--people", type=int, default=2300)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=2, help="warm runs per case")
    ap.add_argument("--skip-cold", action="store_true", help="no geodesic table builds")
    ap.add_argument("--skip-minival", action="store_true", help="the README example only")
    off = ap.add_argument_group("side by side with the official evaluator")
    off.add_argument("--against-official", metavar="PATH", help=OFFICIAL_HELP)
    off.add_argument(
        "--official-data",
        metavar="DIR",
        help="its eval data files (SMPL_subdiv.mat, SMPL_SUBDIV_TRANSFORM.mat, Pdist_matrix"
        ".mat/.pkl); default: the open template exported in that layout, so both evaluators "
        "use one template (with DensePose's own files only time and RSS compare, not AP)",
    )
    off.add_argument(
        "--official-class", default="denseposeCOCOeval", help="class name (%(default)s)"
    )
    off.add_argument("--official-iou-type", default="uv", help="iouType (default %(default)s)")
    off.add_argument(
        "--official-modes", default="GPSm,GPS,IOU", help="calc_mode values (%(default)s)"
    )
    off.add_argument("--no-official-shims", action="store_true", help="run the file as it is")
    args = ap.parse_args()
    if args.against_official and not Path(args.against_official).is_file():
        raise SystemExit(f"--against-official {args.against_official}: no such file")
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"python {platform.python_version()}"
    )
    ex = ["score", str(ROOT / "examples" / "preds.json"), str(ROOT / "examples" / "gt.json")]
    common = ["--metric", "all", "-q", "--workers", str(args.workers)]
    print()
    print(f"| {'run':<64} | {'wall':>9} | {'peak RSS':>9} | {'import':>7} | {'load':>5} |")
    print(f"|{'-' * 66}|{'-' * 11}|{'-' * 11}|{'-' * 9}|{'-' * 7}|")
    with contextlib.ExitStack() as stack:
        tmp = lambda: stack.enter_context(tempfile.TemporaryDirectory())  # noqa: E731
        jd = Path(tmp())
        compare = args.against_official and args.skip_minival
        warm = _warm_runs("example", [*ex, *common], tmp(), tmp(), args, compare, jd)
        if compare:
            official_rows(args, (ROOT / "examples" / "preds.json", ROOT / "examples" / "gt.json",
                                 "example"), warm)  # fmt: skip
        if args.skip_minival:
            return
        sys.path.insert(0, str(HERE))
        from _minival import cached_case

        case = cached_case(args.images, args.people)
        mv = ["score", str(case / "preds.json"), str(case / "gt.json"), *common]
        size = os.path.getsize(case / "preds.json") / 1e6
        name = f"minival {args.images} img, {size:.0f} MB"
        nc = tmp()
        if args.skip_cold:
            dc = _warm_dir()
            row(f"{name}, table cached, kernels compile", run(mv, nc, dc))
        else:
            row(f"{name}, first-ever", run(mv, nc, tmp()))
            dc = tmp()
            row(f"{name}, cold (no table)", run(mv, nc, dc))
        warm = _warm_runs(name, mv, nc, dc, args, bool(args.against_official), jd, first=False)
        if args.against_official:
            official_rows(args, (case / "preds.json", case / "gt.json", name), warm)


def _warm_runs(name, argv, nc, dc, args, with_json, jd, first=True) -> dict:
    """(The example's first-ever run, then) ``--repeat`` warm runs; the last one's result
    (with ``--json`` output when the official evaluator is compared with it)."""
    last = {}
    if first:
        last = run(argv, nc, dc)
        row(f"{name}, first-ever (empty Numba + dpeval caches)", last)
    for _ in range(args.repeat):
        out = str(jd / "dpeval.json")
        last = run([*argv, "--json", out] if with_json else argv, nc, dc)
        row(f"{name}, warm", last)
        last["json"] = out if with_json else None
    return last


def _warm_dir() -> str:
    """With --skip-cold: the benchmarks' own cache (its table built once by an earlier run)."""
    d = HERE / ".cache" / "dpeval"
    if not any(d.glob("geodesic-*.npy")):
        raise SystemExit(
            f"--skip-cold needs a geodesic table in {d}; build it once with "
            f"DPEVAL_CACHE_DIR={d} dpeval cache build"
        )
    return str(d)


if __name__ == "__main__":
    main()

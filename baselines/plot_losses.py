"""Training curves of a reproduce run: the DensePose losses of both models against time.

    python -m baselines.plot_losses runs/synth-cpu-4 -o baselines/synth_cpu_losses.png

Reads ``fcn/loss_log.jsonl`` and ``rcnn/loss_log.jsonl`` of a ``baselines.reproduce``
output folder and draws, against training minutes, the part loss (FCN ``loss_I``, RCNN
``dp_part``), the U/V loss (FCN ``(loss_U + loss_V) / 2`` divided by its ``uv_weight``,
RCNN ``dp_uv``) and the learning rate, each smoothed over a 60 s window. Vertical lines
mark the ``--mark`` minutes (e.g. where a run was resumed with a longer budget).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

__all__ = ["load_log", "main", "plot_run"]

_SERIES = {
    "fcn": ("loss_I", ("loss_U", "loss_V")),
    "rcnn": ("dp_part", ("dp_uv",)),
}


def load_log(path: Path) -> dict[str, np.ndarray]:
    """Columns of a ``loss_log.jsonl`` (rows without a key get NaN)."""
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    keys = sorted({k for r in rows for k in r})
    return {k: np.array([float(r.get(k, np.nan)) for r in rows]) for k in keys}


def _smooth(t: np.ndarray, y: np.ndarray, window: float) -> tuple[np.ndarray, np.ndarray]:
    """Means of ``y`` over consecutive ``window``-second bins of ``t``."""
    bins = np.floor(t / window).astype(int)
    edges = np.flatnonzero(np.diff(bins)) + 1
    groups = np.split(np.arange(len(t)), edges)
    return (
        np.array([t[g].mean() for g in groups]) / 60.0,
        np.array([np.nanmean(y[g]) for g in groups]),
    )


def plot_run(run: Path, out: Path, marks: list[float], window: float = 60.0) -> Path:
    """Draw the curves of one reproduce folder to ``out`` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    for model, (part_key, uv_keys) in _SERIES.items():
        log_path = run / model / "loss_log.jsonl"
        if not log_path.exists():
            continue
        log = load_log(log_path)
        t = log["time"]
        uv = np.mean([log[k] for k in uv_keys], axis=0)
        if model == "fcn":
            cfg = json.loads((run / model / "config.json").read_text())
            uv = uv / float(cfg.get("uv_weight", 1.0))  # the logged U/V losses are weighted
        label = {"fcn": "FCN", "rcnn": "RCNN"}[model]
        axes[0].plot(*_smooth(t, log[part_key], window), label=f"{label} {part_key}")
        axes[1].plot(*_smooth(t, uv, window), label=f"{label} {'/'.join(uv_keys)}")
        axes[2].plot(t / 60.0, log["lr"], label=f"{label} lr")
    titles = ("part loss (cross-entropy)", "U/V loss (smooth L1, unweighted)", "learning rate")
    for ax, title in zip(axes, titles, strict=True):
        ax.set_title(title)
        ax.set_xlabel("training minutes (one thread per model)")
        for m in marks:
            ax.axvline(m, color="grey", linestyle=":", linewidth=1)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[1].set_ylim(bottom=0)
    fig.suptitle(f"{run.name}: training curves ({window:.0f} s means)")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", type=Path, help="a baselines.reproduce output folder")
    ap.add_argument("-o", "--output", type=Path, required=True, help="PNG to write")
    ap.add_argument("--mark", type=float, action="append", default=[], help="minute to mark")
    args = ap.parse_args(argv)
    if (
        not (args.run / "fcn" / "loss_log.jsonl").exists()
        and not (args.run / "rcnn" / "loss_log.jsonl").exists()
    ):
        ap.error(f"{args.run}: no fcn/ or rcnn/ loss_log.jsonl; pass a reproduce output folder")
    print(plot_run(args.run, args.output, args.mark))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

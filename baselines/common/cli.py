"""Command-line pieces shared by the baselines' ``__main__`` modules
(``python -m baselines.fcn`` and ``python -m baselines.rcnn``).

The ``add_*`` helpers declare the ``train`` options both baselines take, with one name,
type and default; :func:`config_overrides` and :func:`pick` hand parsed options on to
``get_config``, ``train`` and ``predict``, whose keywords are the options' dests.
"""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["add_overrides", "add_run_options", "config_overrides", "pick"]

# options that override a config's value (None: keep the config's)
_OVERRIDES = ("iters", "batch_size", "lr", "workers", "threads", "time_budget", "cpu_amp")


def add_overrides(t: argparse.ArgumentParser, *, iters_help: str | None = None) -> None:
    """``--iters``, ``--batch-size``, ``--lr``, ``--workers``: the config's unless given."""
    t.add_argument("--iters", type=int, help=iters_help)
    t.add_argument("--batch-size", type=int)
    t.add_argument("--lr", type=float)
    t.add_argument("--workers", type=int)


def add_run_options(t: argparse.ArgumentParser) -> None:
    """``--seed``, ``--max-images``, ``--time-budget``, ``--cpu-amp`` and ``--resume`` of a
    training run."""
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--max-images", type=int)
    t.add_argument("--time-budget", type=float, help="training seconds (LR schedule over them)")
    t.add_argument(
        "--cpu-amp",
        choices=("auto", "on", "off"),
        help="bfloat16 autocast on the CPU (config default; auto: only with AMX bf16 tiles)",
    )
    t.add_argument("--resume", action="store_true", help="continue from CKPT_DIR/model.pt")


def pick(args: argparse.Namespace, *names: str) -> dict[str, Any]:
    """The named attributes of ``args``, as keywords (each dest is the keyword)."""
    return {name: getattr(args, name) for name in names}


def config_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """``get_config`` keywords from ``train``'s options: iterations, batch size, learning
    rate, loader workers, threads, time budget and CPU bfloat16 (None keeps the config's
    value)."""
    return pick(args, *_OVERRIDES)

"""Fixtures for the baselines' tests: torch pinned to one thread, a tiny synthetic split.

The whole directory is skipped when torch is not installed (it is part of the ``test``
extra, so CI always has it).
"""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")
torch = pytest.importorskip("torch")
torch.set_num_threads(1)
torch.set_num_interop_threads(1) if hasattr(torch, "set_num_interop_threads") else None


def _tiny_config():
    from dpeval.synth.generate import SynthConfig
    from dpeval.synth.scene import SceneConfig

    # 160 x 128 px, at most two people, no crowds, only medium and large people: big
    # enough for a 1/4-stride head to see parts, small enough for CPU smoke training.
    return SynthConfig(
        scene=SceneConfig(
            width=160, height=128, max_people=2, crowd_prob=0.0, size_mix=(0.0, 0.5, 0.5)
        )
    )


@pytest.fixture(scope="session")
def synth_tiny(tmp_path_factory):
    """A DensePose-Synth root with ``train`` (48 images) and ``val`` (12 images) splits.

    Returns the root directory; annotations are at
    ``root/annotations/densepose_synth_{train,val}.json``.
    """
    from dpeval.synth.generate import generate_dataset

    root = tmp_path_factory.mktemp("synth_tiny")
    cfg = _tiny_config()
    generate_dataset(root, split="train", n_images=48, seed=0, config=cfg)
    generate_dataset(root, split="val", n_images=12, seed=1, config=cfg)
    return root

"""Shared PyTorch building blocks of the reference baselines (FCN and DensePose-RCNN).

- :mod:`.ops`: RoIAlign (plain torch, C++-kernel semantics), multi-scale RoIAlign,
  box IoU, NMS (numba on CPU; torchvision when its compiled ops load).
- :mod:`.backbones`: ResNet-18/34/50 (+dilation), FPN, ResNet-FPN; GroupNorm by default.
- :mod:`.data`: DensePose-COCO / DensePose-Synth reader as a torch ``Dataset``.
- :mod:`.losses`: the DensePose I/U/V losses.
- :mod:`.train`: seeding, device, checkpoints, loss log, LR schedule, a training loop.
- :mod:`.predict`: model outputs -> dpeval records -> prediction files.
- :mod:`.cli`: the command-line options both baselines' ``__main__`` modules declare.

Nothing here needs torchvision or timm; dpeval itself never imports this package.
"""

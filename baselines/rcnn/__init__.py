"""DensePose-RCNN baseline (ResNet-FPN, RPN, box head, DensePose head), plain PyTorch.

Run ``python -m baselines.rcnn train|predict --help``; see :mod:`baselines.rcnn.model`.
"""

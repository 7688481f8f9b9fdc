"""DenseReg-style fully-convolutional DensePose baseline.

``python -m baselines.fcn train --config tiny --data ROOT --out CKPT_DIR`` trains on the
image-level IUV maps of a DensePose-Synth split; ``python -m baselines.fcn predict --ckpt
CKPT_DIR --data ROOT --split val --out preds.json [--dense-out DIR]`` writes files that
``dpeval score`` reads. See :mod:`.config`, :mod:`.model`, :mod:`.train`, :mod:`.predict`.
"""

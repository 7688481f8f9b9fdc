"""baselines.common.backbones: parameter counts, shapes, strides, dilation, norms."""

from __future__ import annotations

import pytest
import torch

from baselines.common.backbones import FPN, ResNet, ResNetFPN, count_parameters, gn_groups


@pytest.mark.parametrize(
    ("depth", "expected"), [(18, 11_176_512), (34, 21_284_672), (50, 23_508_032)]
)
def test_parameter_counts_match_torchvision(depth, expected):
    # torchvision resnet18/34/50 minus fc (512*1000+1000 / 2048*1000+1000)
    assert count_parameters(ResNet(depth, 64, norm="bn")) == expected
    # GroupNorm has the same affine parameters as BatchNorm
    assert count_parameters(ResNet(depth, 64, norm="gn")) == expected


def test_resnet18_fpn256_count():
    # lateral and output convs with bias (norm="none"): the 13.78 M of the feasibility notes
    net = ResNet(18, 64, norm="bn")
    fpn = FPN([64, 128, 256, 512], 256, norm="none")
    assert count_parameters(net) + count_parameters(fpn) == 13_783_616


@pytest.mark.parametrize("depth", [18, 50])
def test_resnet_shapes_and_strides(depth):
    net = ResNet(depth, width=16, norm="gn").eval()
    with torch.no_grad():
        out = net(torch.zeros(2, 3, 96, 64))
    assert list(out) == ["c2", "c3", "c4", "c5"]
    mult = 4 if depth == 50 else 1
    for i, key in enumerate(["c2", "c3", "c4", "c5"]):
        stride = 4 * 2**i
        assert net.strides[key] == stride
        assert net.out_channels[key] == 16 * 2**i * mult
        assert out[key].shape == (2, 16 * 2**i * mult, 96 // stride, 64 // stride)


@pytest.mark.parametrize(
    ("dilation", "os"),
    [((False, True, True), 8), ((False, False, True), 16), ((True, True, True), 4)],
)
def test_dilation_sets_output_stride(dilation, os):
    net = ResNet(18, width=8, norm="gn", dilation=dilation).eval()
    with torch.no_grad():
        c5 = net(torch.zeros(1, 3, 64, 64))["c5"]
    assert net.strides["c5"] == os
    assert c5.shape[-2:] == (64 // os, 64 // os)
    # dilation does not change the parameter count
    assert count_parameters(net) == count_parameters(ResNet(18, width=8, norm="gn"))


def test_resnet_fpn_odd_sizes_and_backward():
    net = ResNetFPN(18, width=8, fpn_channels=16, norm="gn")
    x = torch.randn(2, 3, 70, 45)
    feats = net(x)
    assert net.strides == (4, 8, 16, 32) and net.out_channels == 16
    assert [tuple(f.shape) for f in feats] == [
        (2, 16, 18, 12),
        (2, 16, 9, 6),
        (2, 16, 5, 3),
        (2, 16, 3, 2),
    ]
    sum(f.mean() for f in feats).backward()
    assert all(p.grad is not None for p in net.fpn.parameters())


def test_norm_variants():
    for norm in ("bn", "frozen_bn", "none"):
        net = ResNet(18, width=8, norm=norm).eval()
        with torch.no_grad():
            assert net(torch.zeros(1, 3, 32, 32))["c5"].shape == (1, 64, 1, 1)
    # frozen BN keeps its statistics in buffers, not parameters
    assert count_parameters(ResNet(18, 64, norm="frozen_bn")) < 11_176_512
    with pytest.raises(ValueError, match="norm"):
        ResNet(18, norm="ln")
    with pytest.raises(ValueError, match="depth"):
        ResNet(101)
    assert [gn_groups(c) for c in (256, 64, 32, 8, 3)] == [32, 16, 8, 2, 1]

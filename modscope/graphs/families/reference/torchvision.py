"""torchvision's CNNs: ResNet (basic and bottleneck blocks, grouped / wide), VGG (with or without
BatchNorm), MobileNetV2 and MobileNetV3 (squeeze-excitation), with torchvision's module names."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["MobileNetV2", "MobileNetV3", "ResNet", "VGG"]


def conv(c_in: int, c_out: int, k: int, stride: int = 1, groups: int = 1, bias: bool = False) -> nn.Conv2d:
    """A ``k x k`` conv padded to keep the map (``(k - 1) // 2``)."""
    return nn.Conv2d(c_in, c_out, k, stride, (k - 1) // 2, groups=groups, bias=bias)


def conv_bn(
    c_in: int, c_out: int, k: int, stride: int = 1, groups: int = 1, act: type | None = None,
    eps: float = 1e-5,
) -> nn.Sequential:
    """torchvision's conv + BatchNorm (+ activation) block: keys ``.0`` (conv) and ``.1`` (BN).
    ``eps`` is BatchNorm's (it enters the folded gain ``|gamma| / sqrt(var + eps)``)."""
    activation = [] if act is None else [act()]
    return nn.Sequential(conv(c_in, c_out, k, stride, groups), nn.BatchNorm2d(c_out, eps=eps), *activation)


# -- ResNet ------------------------------------------------------------------------------------------
class BasicBlock(nn.Module):
    def __init__(self, c_in: int, planes: int, stride: int, downsample: bool) -> None:
        super().__init__()
        self.conv1, self.bn1 = conv(c_in, planes, 3, stride), nn.BatchNorm2d(planes)
        self.conv2, self.bn2 = conv(planes, planes, 3), nn.BatchNorm2d(planes)
        self.downsample = conv_bn(c_in, planes, 1, stride) if downsample else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(out + (x if self.downsample is None else self.downsample(x)))


class Bottleneck(nn.Module):
    """1x1 reduce to ``width``, 3x3 (grouped) carrying the stride, 1x1 expand to ``4 planes``."""

    def __init__(
        self, c_in: int, planes: int, width: int, groups: int, stride: int, downsample: bool
    ) -> None:
        super().__init__()
        self.conv1, self.bn1 = conv(c_in, width, 1), nn.BatchNorm2d(width)
        self.conv2, self.bn2 = conv(width, width, 3, stride, groups), nn.BatchNorm2d(width)
        self.conv3, self.bn3 = conv(width, 4 * planes, 1), nn.BatchNorm2d(4 * planes)
        self.downsample = conv_bn(c_in, 4 * planes, 1, stride) if downsample else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn3(self.conv3(F.relu(self.bn2(self.conv2(out)))))
        return F.relu(out + (x if self.downsample is None else self.downsample(x)))


class ResNet(nn.Module):
    """Stem conv + BN + max pool, four stages (stride 2 from the second on; a projection shortcut
    where the stride or the width changes), global average pool, ``fc``."""

    def __init__(self, c: Mapping[str, Any]) -> None:
        super().__init__()
        stem = c["stem"]
        self.conv1 = nn.Conv2d(c["in_channels"], stem, c["stem_kernel"], 2, c["stem_kernel"] // 2, bias=False)
        self.bn1 = nn.BatchNorm2d(stem)
        bottleneck = c["block"] == "bottleneck"
        c_in = stem
        for s, (n, planes) in enumerate(zip(c["blocks"], c["planes"], strict=True)):
            out = 4 * planes if bottleneck else planes
            blocks = []
            for b in range(n):
                stride = 2 if s > 0 and b == 0 else 1
                down = b == 0 and (stride != 1 or c_in != out)
                blocks.append(
                    Bottleneck(c_in, planes, c["widths"][s], c["groups"], stride, down)
                    if bottleneck
                    else BasicBlock(c_in, planes, stride, down)
                )
                c_in = out
            self.add_module(f"layer{s + 1}", nn.Sequential(*blocks))
        self.fc = nn.Linear(c_in, c["classes"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 3, 2, 1)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


# -- VGG ---------------------------------------------------------------------------------------------
class VGG(nn.Module):
    """``features``: 3x3 convs (+ BN) + ReLU, ``"M"`` a 2x2 max pool; 7x7 adaptive average pool,
    channel-major flatten, ``classifier`` Linear-ReLU-Dropout x 2 + Linear."""

    def __init__(self, c: Mapping[str, Any]) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = c["in_channels"]
        for item in c["layers"]:
            if item == "M":
                layers.append(nn.MaxPool2d(2, 2))
                continue
            layers.append(nn.Conv2d(c_in, item, 3, padding=1))
            if c["batch_norm"]:
                layers.append(nn.BatchNorm2d(item))
            layers.append(nn.ReLU())
            c_in = item
        self.features = nn.Sequential(*layers)
        h1, h2 = c["hidden"]
        self.classifier = nn.Sequential(
            nn.Linear(c_in * 49, h1), nn.ReLU(), nn.Dropout(), nn.Linear(h1, h2), nn.ReLU(), nn.Dropout(),
            nn.Linear(h2, c["classes"]),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.adaptive_avg_pool2d(self.features(x), (7, 7))
        return self.classifier(torch.flatten(x, 1))


# -- MobileNetV2 -------------------------------------------------------------------------------------
class InvertedResidual(nn.Module):
    """``conv``: [1x1 expand] -> 3x3 depthwise -> 1x1 project + BN; the input added when the
    stride is 1 and the width is kept."""

    def __init__(self, c_in: int, hidden: int, c_out: int, stride: int, expand: bool) -> None:
        super().__init__()
        expansion = [conv_bn(c_in, hidden, 1, act=nn.ReLU6)] if expand else []
        self.conv = nn.Sequential(
            *expansion, conv_bn(hidden, hidden, 3, stride, groups=hidden, act=nn.ReLU6),
            conv(hidden, c_out, 1), nn.BatchNorm2d(c_out),
        )
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.residual else self.conv(x)


class MobileNetV2(nn.Module):
    def __init__(self, c: Mapping[str, Any]) -> None:
        super().__init__()
        self.features = nn.Sequential(
            conv_bn(c["in_channels"], c["stem"], 3, 2, act=nn.ReLU6),
            *[InvertedResidual(*block) for block in c["blocks"]],
            conv_bn(c["blocks"][-1][2], c["last"], 1, act=nn.ReLU6),
        )
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(c["last"], c["classes"]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(F.adaptive_avg_pool2d(self.features(x), 1), 1))


# -- MobileNetV3 -------------------------------------------------------------------------------------
V3_EPS = 1e-3  # torchvision's MobileNetV3 builds its BatchNorms with eps 0.001 (not in the weights)


class SqueezeExcitation(nn.Module):
    """``x * hardsigmoid(fc2(relu(fc1(avgpool(x)))))``: 1x1 convs with biases."""

    def __init__(self, channels: int, squeeze: int) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Conv2d(channels, squeeze, 1), nn.Conv2d(squeeze, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.hardsigmoid(self.fc2(F.relu(self.fc1(F.adaptive_avg_pool2d(x, 1))))) * x


class InvertedResidualV3(nn.Module):
    """``block``: [1x1 expand] -> ``k x k`` depthwise -> [squeeze-excitation] -> 1x1 project."""

    def __init__(self, b: Mapping[str, Any]) -> None:
        super().__init__()
        c_in, exp, c_out = b["in"], b["expanded"], b["out"]
        expansion = [conv_bn(c_in, exp, 1, act=nn.Hardswish, eps=V3_EPS)] if exp != c_in else []
        self.block = nn.Sequential(
            *expansion, conv_bn(exp, exp, b["kernel"], b["stride"], groups=exp, act=nn.Hardswish, eps=V3_EPS),
            *([SqueezeExcitation(exp, b["squeeze"])] if b["squeeze"] else []),
            conv_bn(exp, c_out, 1, eps=V3_EPS),
        )
        self.residual = b["stride"] == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x) + x if self.residual else self.block(x)


class MobileNetV3(nn.Module):
    def __init__(self, c: Mapping[str, Any]) -> None:
        super().__init__()
        self.features = nn.Sequential(
            conv_bn(c["in_channels"], c["stem"], 3, 2, act=nn.Hardswish, eps=V3_EPS),
            *[InvertedResidualV3(b) for b in c["blocks"]],
            conv_bn(c["blocks"][-1]["out"], c["last_conv"], 1, act=nn.Hardswish, eps=V3_EPS),
        )
        self.classifier = nn.Sequential(
            nn.Linear(c["last_conv"], c["last"]), nn.Hardswish(), nn.Dropout(0.2),
            nn.Linear(c["last"], c["classes"]),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(F.adaptive_avg_pool2d(self.features(x), 1), 1))

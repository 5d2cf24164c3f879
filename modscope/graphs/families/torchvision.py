"""torchvision CNN checkpoints (``state_dict()`` of the torchvision models; timm's ResNets share the
names): ResNet, VGG, MobileNetV2, MobileNetV3.

- **ResNet** (``conv1``, ``bn1``, ``layer1.0.conv1``, ``fc``): basic blocks, or bottleneck blocks when
  ``layer1.0.conv3`` exists (wide and grouped ResNeXt widths read off ``conv2``); four stages,
  blocks per stage counted, a projection shortcut where torchvision puts one.
- **VGG** (``features.N`` convs, ``classifier.0/3/6``): the conv widths and where the max pools sit,
  read off the layer indices (with or without BatchNorm); the head reads a 7x7 map, channel-major.
- **MobileNetV2** (``features.N.conv``) and **MobileNetV3** (``features.N.block``, small or large,
  squeeze-excitation where ``fc1`` / ``fc2`` exist): a block adds its input when its stride is 1
  and its width is kept. Strides are not in the weights: they come from torchvision's standard
  layouts (17 blocks for V2, 11 / 15 for V3 small / large) or ``config={'strides': [...]}``, and
  are only asked for when a block keeps its width.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from typing import Any

from ...errors import ModscopeError
from .base import WAY_OUT, Family, count_indices, shape_of, weights

__all__ = ["VGG", "MobileNetV2", "MobileNetV3", "ResNet"]

# torchvision's standard strides per inverted-residual block
_V2_STRIDES = (1, 2, 1, 2, 1, 1, 2, 1, 1, 1, 1, 1, 1, 2, 1, 1, 1)
_V3_STRIDES = {
    11: ("small", (2, 2, 1, 2, 1, 1, 1, 1, 2, 1, 1)),
    15: ("large", (1, 2, 1, 2, 1, 1, 2, 1, 1, 1, 1, 1, 2, 1, 1)),
}

_STEM = ("features.0.0.weight", "features.0.1.running_var")  # MobileNets' first conv and its BatchNorm


class _Torchvision(Family):
    """A torchvision CNN: its reference module is the class of the same name in
    `reference.torchvision`; its example input a ``side`` x ``side`` image."""

    def module(self, config: Mapping[str, Any]):
        from .reference import torchvision

        return getattr(torchvision, type(self).__name__)(config)

    def example_input(self, config: Mapping[str, Any]):
        import torch

        side = self.side(config)
        return torch.zeros(1, config["in_channels"], side, side)

    def side(self, config: Mapping[str, Any]) -> int:
        return 32


def _strides(
    given: Mapping[str, Any], standard: tuple[int, ...] | None, keeps: list[bool], what: str
) -> list[int]:
    """Each block's stride: given, or torchvision's standard layout; only blocks that keep their
    width need one (the others add no input either way)."""
    strides = given.get("strides")
    if strides is not None:
        if len(strides) != len(keeps) or not all(isinstance(s, int) and s > 0 for s in strides):
            raise ModscopeError(
                f"config strides={strides!r}: expected {len(keeps)} positive integers, one per block"
            )
        return list(strides)
    if standard is not None:
        return list(standard)
    if not any(keeps):
        return [1] * len(keeps)
    first = keeps.index(True) + 1
    raise ModscopeError(
        f"features.{first}: a {what} block that keeps its width adds its input only at stride 1, and "
        f"{len(keeps)} blocks are not torchvision's standard layout: pass config={{'strides': [...]}} "
        "(one stride per block)"
    )


def _blocks(keys: Collection[str], inner: str) -> int:
    """How many ``features.N.<inner>`` blocks follow the stem (``features.1`` on)."""
    n = 0
    while any(k.startswith(f"features.{n + 1}.{inner}.") for k in keys):
        n += 1
    return n


class ResNet(_Torchvision):
    name = "resnet"
    title = "torchvision ResNet"
    signature = ("conv1.weight", "bn1.running_var", "fc.weight", "layer1.0.bn1.running_var") + weights(
        "layer1.0.", "conv1", "conv2"
    )

    def config(self, tensors: Mapping[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
        keys = tensors.keys()
        stem, c_in, k, _ = shape_of(tensors, "conv1.weight")
        bottleneck = "layer1.0.conv3.weight" in keys
        blocks = [count_indices(keys, rf"^layer{s}\.(\d+)\.") for s in range(1, 5)]
        if 0 in blocks:
            raise ModscopeError(
                f"layer{blocks.index(0) + 1}.0.conv1.weight: missing: a torchvision ResNet has four stages; "
                f"{WAY_OUT}"
            )
        c: dict[str, Any] = {
            "block": "bottleneck" if bottleneck else "basic", "blocks": blocks, "stem": stem,
            "stem_kernel": k, "in_channels": c_in, "classes": shape_of(tensors, "fc.weight")[0],
        }
        if bottleneck:
            outs = [shape_of(tensors, f"layer{s}.0.conv3.weight")[0] for s in range(1, 5)]
            if any(o % 4 for o in outs):
                raise ModscopeError(f"layer1.0.conv3.weight: {outs} output channels are not 4 x planes")
            widths = [shape_of(tensors, f"layer{s}.0.conv2.weight")[0] for s in range(1, 5)]
            per_group = shape_of(tensors, "layer1.0.conv2.weight")[1]
            if widths[0] % per_group:
                raise ModscopeError(f"layer1.0.conv2.weight: {widths[0]} channels in groups of {per_group}")
            c.update(planes=[o // 4 for o in outs], widths=widths, groups=widths[0] // per_group)
        else:
            c.update(planes=[shape_of(tensors, f"layer{s}.0.conv1.weight")[0] for s in range(1, 5)])
        return c

    def side(self, config: Mapping[str, Any]) -> int:
        return 64

    def describe(self, config: Mapping[str, Any]) -> str:
        depth = sum(config["blocks"]) * (3 if config["block"] == "bottleneck" else 2) + 2
        groups = f", {config['groups']} groups" if config.get("groups", 1) > 1 else ""
        return (
            f"ResNet-{depth} layout: {config['block']} blocks {'-'.join(map(str, config['blocks']))}, "
            f"planes {'-'.join(map(str, config['planes']))}{groups}, {config['classes']} classes"
        )


class VGG(_Torchvision):
    name = "vgg"
    title = "torchvision VGG"
    signature = ("features.0.weight", "classifier.0.weight", "classifier.3.weight", "classifier.6.weight")

    def config(self, tensors: Mapping[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
        keys = tensors.keys()
        convs = sorted(
            int(m.group(1))
            for k in keys
            if (m := re.match(r"^features\.(\d+)\.weight$", k)) and len(shape_of(tensors, k)) == 4
        )
        if not convs or convs[0] != 0:
            raise ModscopeError("features.0.weight: not a conv kernel, as a torchvision VGG's first layer is")
        bn = f"features.{convs[0] + 1}.running_var" in keys
        step = 3 if bn else 2  # conv (+ BN) + ReLU
        layers: list[Any] = []
        position = 0
        for n in convs:
            if n == position + 1:
                layers.append("M")
            elif n != position:
                raise ModscopeError(f"features.{n}.weight: not where a torchvision VGG puts its next conv")
            layers.append(shape_of(tensors, f"features.{n}.weight")[0])
            position = n + step
        layers.append("M")
        return {
            "layers": layers,
            "batch_norm": bn,
            "in_channels": shape_of(tensors, "features.0.weight")[1],
            "hidden": [
                shape_of(tensors, "classifier.0.weight")[0], shape_of(tensors, "classifier.3.weight")[0],
            ],
            "classes": shape_of(tensors, "classifier.6.weight")[0],
        }

    def side(self, config: Mapping[str, Any]) -> int:
        return max(8, 2 ** config["layers"].count("M"))  # a pixel left after every max pool

    def describe(self, config: Mapping[str, Any]) -> str:
        n = sum(1 for x in config["layers"] if x != "M") + 3
        bn = " with BatchNorm" if config["batch_norm"] else ""
        widths = "-".join(str(x) for x in config["layers"] if x != "M")
        return (
            f"VGG-{n} layout{bn}: convs {widths}, hidden {config['hidden'][0]}, {config['classes']} classes"
        )


class MobileNetV2(_Torchvision):
    name = "mobilenet_v2"
    title = "torchvision MobileNetV2"
    signature = (*_STEM, "features.1.conv.0.0.weight", "classifier.1.weight")

    def config(self, tensors: Mapping[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
        keys = tensors.keys()
        n = _blocks(keys, "conv")
        shapes = []
        for i in range(1, n + 1):
            p = f"features.{i}.conv."
            expand = p + "3.running_var" in keys
            first = shape_of(tensors, p + "0.0.weight")
            hidden = first[0]
            c_in = first[1] if expand else hidden
            c_out = shape_of(tensors, p + ("2.weight" if expand else "1.weight"))[0]
            shapes.append((c_in, hidden, c_out, expand))
        keeps = [c_in == c_out for c_in, _, c_out, _ in shapes]
        strides = _strides(given, _V2_STRIDES if n == len(_V2_STRIDES) else None, keeps, "MobileNetV2")
        stem, c_in = shape_of(tensors, "features.0.0.weight")[:2]
        return {
            "stem": stem, "in_channels": c_in,
            "blocks": [[a, h, b, s, e] for (a, h, b, e), s in zip(shapes, strides, strict=True)],
            "last": shape_of(tensors, f"features.{n + 1}.0.weight")[0],
            "classes": shape_of(tensors, "classifier.1.weight")[0],
        }

    def describe(self, config: Mapping[str, Any]) -> str:
        residual = sum(1 for a, _, b, s, _ in config["blocks"] if a == b and s == 1)
        return (
            f"{len(config['blocks'])} inverted-residual blocks ({residual} residual), widths "
            f"{config['stem']}..{config['blocks'][-1][2]}, last {config['last']}, {config['classes']} classes"
        )


class MobileNetV3(_Torchvision):
    name = "mobilenet_v3"
    title = "torchvision MobileNetV3"
    signature = (*_STEM, "features.1.block.0.0.weight", "classifier.0.weight", "classifier.3.weight")

    def config(self, tensors: Mapping[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
        keys = tensors.keys()
        n = _blocks(keys, "block")
        blocks = []
        for i in range(1, n + 1):
            p = f"features.{i}.block."
            first = shape_of(tensors, p + "0.0.weight")
            expand = first[1] != 1  # a depthwise kernel reads one channel
            dw = 1 if expand else 0
            exp, _, kernel, _ = shape_of(tensors, f"{p}{dw}.0.weight")
            se = f"{p}{dw + 1}.fc1.weight" in keys
            squeeze = shape_of(tensors, f"{p}{dw + 1}.fc1.weight")[0] if se else 0
            c_out = shape_of(tensors, f"{p}{dw + 2 if se else dw + 1}.0.weight")[0]
            c_in = first[1] if expand else exp  # this block's input width (the stem's is read below)
            blocks.append({"in": c_in, "expanded": exp, "out": c_out, "kernel": kernel, "squeeze": squeeze})
        layout, standard = _V3_STRIDES.get(n, ("custom", None))
        strides = _strides(given, standard, [b["in"] == b["out"] for b in blocks], "MobileNetV3")
        for b, s in zip(blocks, strides, strict=True):
            b["stride"] = s
        stem, c_in = shape_of(tensors, "features.0.0.weight")[:2]
        return {
            "layout": layout, "stem": stem, "in_channels": c_in, "blocks": blocks,
            "last_conv": shape_of(tensors, f"features.{n + 1}.0.weight")[0],
            "last": shape_of(tensors, "classifier.0.weight")[0],
            "classes": shape_of(tensors, "classifier.3.weight")[0],
        }

    def label(self, config: Mapping[str, Any]) -> str:
        return f"{self.title} ({config['layout']})" if config["layout"] != "custom" else self.title

    def describe(self, config: Mapping[str, Any]) -> str:
        blocks = config["blocks"]
        residual = sum(1 for b in blocks if b["in"] == b["out"] and b["stride"] == 1)
        se = sum(1 for b in blocks if b["squeeze"])
        return (
            f"{len(blocks)} inverted-residual blocks ({residual} residual, {se} squeeze-excitation), "
            f"last {config['last_conv']} -> {config['last']}, {config['classes']} classes"
        )

"""The zoo's ImageNet nets, registered by name; torchvision is imported only when one is built (importing it costs
every command about a second)."""
from __future__ import annotations

from functools import partial

from distill.models.base import FeatureNet
from distill.models.registry import IMAGENET_NET_PREFIX, register

TORCHVISION_RESNETS = (18, 34, 50)  # tv_resnet18, tv_resnet34, tv_resnet50


def torchvision_resnet(depth: int, num_classes: int) -> FeatureNet:
    from distill.models.torchvision_resnet import TorchvisionResNet

    return TorchvisionResNet(depth, num_classes)


for _depth in TORCHVISION_RESNETS:
    register(f"{IMAGENET_NET_PREFIX}resnet{_depth}")(partial(torchvision_resnet, _depth))

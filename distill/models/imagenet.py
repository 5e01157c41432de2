"""The zoo's ImageNet nets, registered by name; torchvision is imported only when one is built (importing it costs
every command about a second). `pretrained` fetches torchvision's ImageNet weights, only when a user asks."""
from __future__ import annotations

from functools import partial

from distill.errors import UserError
from distill.models.base import FeatureNet
from distill.models.registry import IMAGENET_NET_PREFIX, register

TORCHVISION_RESNETS = (18, 34, 50)  # tv_resnet18, tv_resnet34, tv_resnet50


def torchvision_resnet(depth: int, num_classes: int) -> FeatureNet:
    from distill.models.torchvision_resnet import TorchvisionResNet

    return TorchvisionResNet(depth, num_classes)


for _depth in TORCHVISION_RESNETS:
    register(f"{IMAGENET_NET_PREFIX}resnet{_depth}")(partial(torchvision_resnet, _depth))


def check_pretrainable(arch: str) -> None:
    """A UserError unless torchvision publishes ImageNet weights of `arch` (one of the zoo's tv_ nets)."""
    if not arch.startswith(IMAGENET_NET_PREFIX):
        names = f"{IMAGENET_NET_PREFIX}resnet" + "/".join(str(depth) for depth in TORCHVISION_RESNETS)
        raise UserError(f"--pretrained-teacher takes one of torchvision's nets ({names}), not {arch}")


def pretrained(arch: str, num_classes: int) -> FeatureNet:
    """`arch` with torchvision's ImageNet weights (its DEFAULT set), loaded strictly. torchvision downloads them into
    torch's hub cache the first time (`$TORCH_HOME/hub/checkpoints`) and reads that file afterwards."""
    check_pretrainable(arch)
    from distill.data.imagefolder import IMAGENET_CLASSES

    if num_classes != IMAGENET_CLASSES:
        raise UserError(f"torchvision's pretrained {arch} classifies ImageNet's {IMAGENET_CLASSES} classes; this "
                        f"dataset has {num_classes}: train the teacher instead, or bring one with --teacher-checkpoint")
    import torch.hub
    from torchvision.models import get_model_weights

    weights = get_model_weights(arch.removeprefix(IMAGENET_NET_PREFIX)).DEFAULT
    try:
        state = weights.get_state_dict(progress=True)
    except OSError as err:  # no network (URLError is an OSError), or an unwritable cache
        raise UserError(f"cannot fetch {weights.url}: {err}; without network, put that file in "
                        f"{torch.hub.get_dir()}/checkpoints/, or bring the teacher with --teacher-checkpoint") from None
    net = torchvision_resnet(int(arch.removeprefix(f"{IMAGENET_NET_PREFIX}resnet")), num_classes)
    net.load_state_dict(state, strict=True)
    return net

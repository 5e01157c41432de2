"""The CIFAR model zoo of the standard KD benchmark, and torchvision's ImageNet ResNets, behind a registry.

`create(name, num_classes)` builds a net; `load_weights(model, path)` loads a RepDistiller-style
checkpoint (`{'model': state_dict}`) or a bare state dict, strictly.
"""
# Registration happens on import; this order is the order `names()` lists.
from distill.models import resnet, resnet_bottleneck, wrn, vgg, mobilenetv2, shufflenet, imagenet  # noqa: F401,I001
from distill.models.base import FeatureNet
from distill.models.checkpoints import load_torch_file, load_weights, read_state_dict, save_weights, weights_bytes
from distill.models.registry import MODELS, register


def create(name: str, num_classes: int = 100) -> FeatureNet:
    """Build the registered network `name` with a `num_classes`-way classifier."""
    if num_classes < 1:
        raise ValueError(f"num_classes must be positive, got {num_classes}")
    return MODELS.get(name)(num_classes)


def names() -> list[str]:
    """All registered architecture names."""
    return MODELS.names()


def num_parameters(model: FeatureNet) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters())


__all__ = [
    "FeatureNet", "create", "names", "num_parameters", "register",
    "load_torch_file", "load_weights", "read_state_dict", "save_weights", "weights_bytes",
]

"""The model registry: `@register("name")` on a `(num_classes) -> FeatureNet` factory."""
from distill.registry import Registry

MODELS: Registry = Registry("model")
register = MODELS.register

IMAGENET_NET_PREFIX = "tv_"  # torchvision's ImageNet nets in the zoo (tv_resnet18, ...): they take ImageNet's recipe
IMAGENET_SIDE, CIFAR_SIDE = 224, 32  # the input side each family of nets was built for


def input_side(arch: str) -> int:
    """The square input `arch` was designed for: 224 for torchvision's ImageNet nets, 32 for the CIFAR zoo."""
    return IMAGENET_SIDE if arch.startswith(IMAGENET_NET_PREFIX) else CIFAR_SIDE

"""The model registry: `@register("name")` on a `(num_classes) -> FeatureNet` factory."""
from distill.registry import Registry

MODELS: Registry = Registry("model")
register = MODELS.register

IMAGENET_NET_PREFIX = "tv_"  # torchvision's ImageNet nets in the zoo (tv_resnet18, ...): they take ImageNet's recipe

"""The model registry: `@register("name")` on a `(num_classes) -> FeatureNet` factory."""
from distill.registry import Registry

MODELS: Registry = Registry("model")
register = MODELS.register

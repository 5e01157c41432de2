"""Loss terms and distillers. Each distiller is one module with its typed config, registered by name
in `DISTILLERS`: kd, dkd, crd, fitnet, at, mimkd. CMI and the MCMI teacher objective live in `cmi`."""
from distill.losses import kd, dkd, crd, fitnet, at, mimkd  # noqa: F401,I001  (registration, in listing order)
from distill.losses.base import (
    BuildContext, Distiller, DistillerConfig, StudentBatch, published_ce_weight,
)
from distill.losses.cmi import MCMIObjective, class_means, conditional_mutual_information
from distill.losses.kd import KDConfig, kd_divergence
from distill.losses.mimkd import ConcatCritic, LocalCritic, MIMKDConfig, SeparableCritic, jsd_mi_lower_bound
from distill.losses.registry import CRITICS, DISTILLERS

__all__ = [
    "CRITICS", "DISTILLERS", "BuildContext", "ConcatCritic", "Distiller", "DistillerConfig", "KDConfig",
    "LocalCritic", "MCMIObjective", "MIMKDConfig", "SeparableCritic", "StudentBatch", "class_means",
    "conditional_mutual_information", "jsd_mi_lower_bound", "kd_divergence",
    "published_ce_weight",
]

"""Loss terms: CE and Hinton KD, CMI and the MCMI teacher objective, MIMKD's JSD bound and critics."""
from distill.losses.cmi import MCMIObjective, class_means, conditional_mutual_information
from distill.losses.kd import kd_divergence
from distill.losses.mimkd import MIMKD, ConcatCritic, LocalCritic, SeparableCritic, jsd_mi_lower_bound
from distill.losses.registry import CRITICS, DISTILLERS

__all__ = [
    "CRITICS", "DISTILLERS", "MIMKD", "ConcatCritic", "LocalCritic", "MCMIObjective", "SeparableCritic",
    "class_means", "conditional_mutual_information", "jsd_mi_lower_bound", "kd_divergence",
]

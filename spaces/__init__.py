"""Optuna define-by-run search spaces, derived from each method's config: one `MethodSpace` per distiller or
teacher objective (`spaces/NAME.py`, registered), sampled under the config's own dotted keys (`dkd.beta`,
`mimkd.critic_depth`), so a trial's values apply to the config with no translation. A field may be sampled only
under some choices (MIMKD's `beta_local` only with local critics); a space may add constants (KD's CE weight).
Spaces are bound with `functools.partial`, so they stay picklable for Ray.
"""
from spaces.ranges import Range

__all__ = ["Range"]

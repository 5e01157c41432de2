"""CRD's knobs: its loss weight, the contrast temperature nce_t (log-uniform) and the number of negatives."""
from spaces.method import MethodSpace, register_space
from spaces.ranges import Range

SPACE = register_space(MethodSpace("crd", ranges={"weight": Range(0.2, 3.2, log=True),
                                                  "nce_t": Range(0.02, 0.3, log=True)},
                                   choices={"nce_k": (4096, 8192, 16384)},
                                   labels={"weight": "w", "nce_t": "τ", "nce_k": "k"}))

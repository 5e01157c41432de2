"""DKD's knobs: the non-target weight beta (log-uniform; the paper's CIFAR sweep ran 1 to 10), alpha and T."""
from spaces.method import MethodSpace, register_space
from spaces.ranges import Range

SPACE = register_space(MethodSpace("dkd", ranges={"beta": Range(1.0, 16.0, log=True), "alpha": Range(0.5, 2.0),
                                                  "temperature": Range(1.0, 8.0)},
                                   labels={"beta": "β", "alpha": "α", "temperature": "T"}))

"""AT's knobs: the weight (log-uniform around RepDistiller's 1000) and which stage maps are matched."""
from distill.losses.at import EVERY_STAGE
from spaces.method import MethodSpace, register_space
from spaces.ranges import Range

SPACE = register_space(MethodSpace("at", ranges={"weight": Range(100.0, 10000.0, log=True)},
                                   choices={"layers": (EVERY_STAGE, "3", "2,3")},
                                   labels={"weight": "w", "layers": "layers"}))

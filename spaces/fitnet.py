"""FitNet's knobs: the hint weight (log-uniform around RepDistiller's 100) and the hint layer (stage 1, 2 or 3)."""
from spaces.method import MethodSpace, register_space
from spaces.ranges import Range

SPACE = register_space(MethodSpace("fitnet", ranges={"weight": Range(10.0, 1000.0, log=True)},
                                   choices={"layer": ("1", "2", "3")},
                                   labels={"weight": "w", "layer": "layer"}))

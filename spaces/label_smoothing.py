"""Label smoothing's knob: ε, uniform over [0, 0.3] around Szegedy et al.'s 0.1 (the config's default, so the
first point)."""
from spaces.method import MethodSpace, register_space
from spaces.ranges import Range

SPACE = register_space(MethodSpace("label_smoothing", side="teacher", ranges={"eps": Range(0.0, 0.3)},
                                   labels={"eps": "ε"}))

"""MCMI's knob: the CMI weight λ, log-uniform over about the range the paper swept (its CIFAR-100 choice, 0.25,
is the config's default and so the first point)."""
from spaces.method import MethodSpace, register_space
from spaces.ranges import Range

SPACE = register_space(MethodSpace("mcmi", side="teacher", ranges={"lam": Range(0.05, 1.0, log=True)},
                                   labels={"lam": "λ"}))

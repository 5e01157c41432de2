"""Pure-PyTorch knowledge-distillation library: data, model zoo, losses and training engine.

Nothing in this package imports Ray or MLflow; the search layer wraps it.
"""
from distill.errors import UserError

__all__ = ["UserError"]

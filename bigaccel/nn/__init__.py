"""Drop-in nn.Module replacements, one file per module family."""
from .int8 import Int8Linear, Int8WeightOnlyLinear

__all__ = ["Int8Linear", "Int8WeightOnlyLinear"]

"""Drop-in nn.Module replacements, one file per module family."""
from .activations import FastGELU, GeluAndMul, SiluAndMul
from .int8 import Int8Linear, Int8WeightOnlyLinear
from .mlp import FusedGatedMLP

__all__ = ["Int8Linear", "Int8WeightOnlyLinear", "SiluAndMul", "GeluAndMul", "FastGELU", "FusedGatedMLP"]

"""Drop-in nn.Module replacements, one file per module family."""
from .activations import FastGELU, GeluAndMul, SiluAndMul
from .int4 import Int4Linear
from .int8 import Int8Linear, Int8WeightOnlyLinear
from .mlp import FusedGatedMLP
from .sparse24 import Sparse24Int8Linear, Sparse24Linear

__all__ = ["Int4Linear", "Int8Linear", "Int8WeightOnlyLinear", "SiluAndMul", "GeluAndMul", "FastGELU", "FusedGatedMLP", "Sparse24Linear",
           "Sparse24Int8Linear"]

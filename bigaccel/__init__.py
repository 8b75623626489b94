"""bigaccel: kernels for running pruned and quantized PyTorch models fast.

Public API:
    bigaccel.nn           drop-in modules: Int8Linear, Int8WeightOnlyLinear
    bigaccel.ops          the ops (also as torch.ops.bigaccel.*), each on the best backend
    bigaccel.reference    plain-PyTorch definitions of every format and op
    bigaccel.info()       what is built, what is in use, and why
"""
from . import backends, nn, ops, reference
from ._info import info, version

__version__ = version()
__all__ = ["backends", "nn", "ops", "reference", "info", "__version__"]

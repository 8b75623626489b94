"""bigaccel: kernels for running pruned and quantized PyTorch models fast.

Public API:
    bigaccel.nn           drop-in modules: Int8Linear, Int8WeightOnlyLinear
    bigaccel.ops          the ops (also as torch.ops.bigaccel.*), each on the best backend
    bigaccel.reference    plain-PyTorch definitions of every format and op
    bigaccel.info()       what is built, what is in use, and why
    bigaccel.convert(model, "int8")   convert a model in place; returns a ConversionReport
    bigaccel.save(model, path), bigaccel.load(model, path)   converted state in safetensors
"""
from . import backends, nn, ops, recipes, reference
from ._info import info, version
from .convert import ConversionError, convert
from .recipes import (ConvertConfig, FuseActivationsConfig, Int4Config, Int8Config, RecipeError,
                      RecipeNotAvailableError, Sparse24Config)
from .report import ConversionReport, LayerReport
from .serialization import CheckpointMismatchError, load, save

__version__ = version()
__all__ = [
    "backends", "nn", "ops", "recipes", "reference", "info", "__version__",
    "convert", "save", "load", "ConversionReport", "LayerReport", "ConversionError", "CheckpointMismatchError",
    "ConvertConfig", "Int8Config", "Int4Config", "Sparse24Config", "FuseActivationsConfig",
    "RecipeError", "RecipeNotAvailableError",
]

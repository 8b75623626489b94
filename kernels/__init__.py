"""Triton kernels, one module per op; installed as ``bigaccel.kernels``.

Each module defines its kernel and a ``torch.library.triton_op`` named
``bigaccel::<op>_triton``. Importing a module needs triton; bigaccel imports
them only when the Triton backend is chosen. These modules know nothing of the
rest of bigaccel.
"""

"""Drop-in nn.Module replacements (Int8Linear, Int4Linear, Sparse24Linear, ...).

Each module family lives in its own file and joins bigaccel.convert as it lands.
"""
__all__: list[str] = []

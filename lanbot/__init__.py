"""lanbot: give a small chat model an identity of its own.

identity (YAML) -> generate -> data folder -> train (mid -> sft) -> checkpoint -> evaluate / chat -> compare
"""

__version__ = "0.1.0"

"""lanbot: give a small chat model an identity of its own.

identity (YAML) -> generate -> data folder -> train (mid -> sft) -> checkpoint -> evaluate / chat -> compare

Each app, `python -m lanbot.<app>`, is a thin entry module here (lanbot/<app>.py); its work lives in the package
of its step, named as a noun: generate -> generation, train -> training, evaluate -> evaluation, compare ->
comparison. Three apps share a step's package, each entry module says why: chat (evaluation's engine),
upload and export.nanochat (sharing: the Hub, the cards and the nanochat formats).
"""

__version__ = "0.1.0"

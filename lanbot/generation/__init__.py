"""Generating an identity's training conversations.

`python -m lanbot.generate` drives it: a backend (the offline template writer in `template.py`, or an
LLM through the OpenAI API) writes conversations of the six types, user personas (`personas.py`) shape
how the user writes, and the data folder keeps what passed validation and deduplication.
"""

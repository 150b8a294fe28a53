"""Generating an identity's training conversations.

`python -m lanbot.generate` drives it (generate_data.py): a backend (backends.py: the offline template writer in
`template/`, or an LLM through the OpenAI API in `llm/`) writes conversations of the registered types, user
personas (`personas/`) shape how the user writes, and the data folder (datafolder.py) keeps what passed
validation and deduplication.
"""

"""Exports of lanbot data to other training stacks' own file formats.

    python -m lanbot.export.nanochat identity=sage   # identity_conversations.jsonl for nanochat
"""

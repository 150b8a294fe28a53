"""Exports of lanbot data to other training stacks' own file formats.

    python -m lanbot.export.nanochat identity=sage                          # identity_conversations.jsonl for nanochat
    python -m lanbot.export.nanochat identity=sage export.checkpoint=sft    # the model, in nanochat's checkpoint layout
"""

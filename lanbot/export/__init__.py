"""Exports of lanbot data to other training stacks' own file formats.

    python -m lanbot.export.nanochat identity=sage                          # identity_conversations.jsonl for nanochat
    python -m lanbot.export.nanochat identity=sage export.checkpoint=sft    # the model, in nanochat's checkpoint layout

Only the entry modules live here (one per target stack, named after it); the converters are in lanbot.sharing,
which the imports (`train.init_from=nanochat:...`, `hf://...`) use too.
"""

"""Generate an identity's training conversations: `python -m lanbot.generate`.

    python -m lanbot.generate identity=sage                  # 1,800 conversations of six types, offline
    python -m lanbot.generate data=agentic data.count=100    # the four tool types, 100 each
    python -m lanbot.generate identity=sage backend=openrouter  # written by an LLM (key in env or .env)
    python -m lanbot.generate data.overwrite=true            # start the data folder afresh

The work is lanbot.generation.generate_data.generate (the generation package: backends, personas, quality
gates); a run killed half-way keeps every line it wrote, and run again it finishes the rest with no duplicates.
"""

from __future__ import annotations

from lanbot.core.app import run_app
from lanbot.generation.generate_data import generate


def main() -> None:
    run_app("generate", lambda cfg, run_dir: generate(cfg, run_dir))


if __name__ == "__main__":
    main()

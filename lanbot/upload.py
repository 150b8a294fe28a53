"""Push a data folder or a checkpoint to the Hugging Face Hub: `python -m lanbot.upload identity=sage upload.repo_id=you/sage-data`.

    python -m lanbot.upload identity=sage upload.repo_id=you/sage-data upload.dry_run=true   # the plan, nothing sent
    python -m lanbot.upload identity=sage upload.repo_id=you/sage-data
    python -m lanbot.upload identity=sage upload.what=checkpoint upload.repo_id=you/sage-tiny

The work is lanbot.sharing.hub_upload.upload, not an `upload` package of its own: uploading is one of the sharing
step's ways out, with the Hub client, the cards and the dataset rows it shares with the Hub downloads
(lanbot.sharing.hub, cards, hub_dataset). The token comes from the environment or `hf auth login`, never the config.
"""

from __future__ import annotations

from lanbot.core.app import run_app
from lanbot.sharing.hub_upload import upload_app


def main() -> None:
    run_app("upload", upload_app)


if __name__ == "__main__":
    main()

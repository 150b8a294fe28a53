"""Hand a trained model to transformers, llama.cpp and Ollama: `python -m lanbot.export.hf identity=sage model=smollm2-135m`.

    python -m lanbot.export.hf identity=sage model=smollm2-135m                       # Sage's sft checkpoint
    python -m lanbot.export.hf identity=sage model=smollm2-135m export.dtype=bfloat16 export.hf_dir=out/sage-hf
    python -m lanbot.export.hf export.checkpoint=outputs/checkpoints/sage/default/smollm2-135m/sft

Writes a Hugging Face folder (config.json, model.safetensors, tokenizer.json, tokenizer_config.json with the model's
chat template, generation_config.json) that transformers loads as it is and llama.cpp's convert_hf_to_gguf.py
converts. For models trained from a pretrained chat model (Llama family, Qwen2); lanbot's own GPT goes to nanochat
(`lanbot.export.nanochat`). The work is lanbot.sharing.hf_export.
"""

from __future__ import annotations

from lanbot.core.app import run_app
from lanbot.sharing.hf_export import export_app


def main() -> None:
    run_app("export.hf", export_app)


if __name__ == "__main__":
    main()

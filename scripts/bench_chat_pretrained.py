"""Single-stream chat speed on SmolLM2-135M-Instruct: lanbot's engine (the GGUF dequantized to float32, KV cache,
ChatML) beside llama.cpp on the same GGUF file (Q4_1, its own kernels), same prompt, greedy, same threads.

Both decode exactly `--new-tokens` tokens after the same ChatML prompt (the stop tokens banned in both), alternating round by round so a busy machine slows both alike; prints tokens/s each and
lanbot's ratio. llama.cpp runs quantized weights (4.5 bits) against lanbot's float32: the gap is mostly that.

    .venv/bin/python scripts/bench_chat_pretrained.py                 # 128 new tokens, 3 rounds, 2 threads
    .venv/bin/python scripts/bench_chat_pretrained.py --new-tokens 256 --threads 1
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

QUESTION = "Why is the sky blue? Explain it to a curious ten-year-old."


def lanbot_rate(engine, prompt: list[int], new_tokens: int) -> float:
    """Tokens/s of one greedy answer of exactly `new_tokens` tokens (the stop tokens banned)."""
    model = engine.model
    banned = torch.tensor(sorted(engine.stops))
    forward = model.forward

    def no_stop(*args, **kwargs):
        logits = forward(*args, **kwargs)
        logits[..., banned] = float("-inf")
        return logits

    model.forward = no_stop
    try:
        start = time.perf_counter()
        done = engine.generate(prompt, max_tokens=new_tokens, temperature=0.0, seed=0)[0]
        seconds = time.perf_counter() - start
    finally:
        model.forward = forward
    return len(done.tokens) / seconds


def llama_cpp_rate(llm, text: str, new_tokens: int, stops: list[int]) -> float:
    start = time.perf_counter()
    out = llm(text, max_tokens=new_tokens, temperature=0.0, stop=[], logit_bias={t: -100.0 for t in stops})
    seconds = time.perf_counter() - start
    return out["usage"]["completion_tokens"] / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from llama_cpp import Llama

    from lanbot.evaluation.engine import Engine
    from lanbot.generation.llm.local_server import bundled_model
    from lanbot.training.pretrained_start import start_from_pretrained
    from lanbot.training.tokenizer import render_for_completion

    model, tok, _ = start_from_pretrained("hf:bundled")
    engine = Engine(model.eval(), tok, "cpu")
    prompt = render_for_completion(tok, [{"role": "user", "content": QUESTION}])
    llm = Llama(model_path=str(bundled_model()), n_ctx=1024, n_threads=args.threads, verbose=False)
    text = tok.decode(prompt)
    ours, theirs = [], []
    for _ in range(args.rounds):
        ours.append(lanbot_rate(engine, prompt, args.new_tokens))
        theirs.append(llama_cpp_rate(llm, text, args.new_tokens, sorted(engine.stops)))
    a, b = statistics.median(ours), statistics.median(theirs)
    print(f"single-stream chat, SmolLM2-135M-Instruct, {args.new_tokens} new tokens, {args.threads} threads, "
          f"median of {args.rounds}:")
    print(f"  lanbot engine (float32, KV cache)  {a:8.1f} tokens/s")
    print(f"  llama.cpp (Q4_1 GGUF)              {b:8.1f} tokens/s")
    print(f"  lanbot / llama.cpp                 {a / b:8.2f}x")


if __name__ == "__main__":
    main()

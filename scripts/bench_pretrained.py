"""Training-speed benchmark of a pretrained model: lanbot's Llama beside transformers' LlamaForCausalLM.

Both hold the same weights (the bundled SmolLM2-135M-Instruct GGUF, dequantized, or `--source` a Hugging Face
folder or another .gguf), take the same batch, precision and threads, and run forward + backward (no optimizer
step: the optimizer is the same code for both), alternating round by round (lanbot, transformers, lanbot, ...)
so that a busy machine slows both alike. Prints tokens/s for each and lanbot's ratio.

    .venv/bin/python scripts/bench_pretrained.py                        # batch 4 x 256, precision auto
    .venv/bin/python scripts/bench_pretrained.py --precision both --rounds 3 --threads 2
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from lanbot.core.device import autocast, cpu_has_bf16


def load(source: str | None):
    """lanbot's model and transformers' with the same (float32) weights."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from lanbot.generation.llm.local_server import bundled_model
    from lanbot.sharing.hf_import import import_pretrained

    pretrained = import_pretrained(source or bundled_model())
    c = pretrained.config
    rope = ({"rope_type": "llama3", "factor": c.rope_factor, "low_freq_factor": c.rope_low_freq_factor,
             "high_freq_factor": c.rope_high_freq_factor, "original_max_position_embeddings": c.rope_original_max_len,
             "rope_theta": c.rope_theta} if c.rope_scaling_type else {"rope_type": "default", "rope_theta": c.rope_theta})
    config = LlamaConfig(vocab_size=c.vocab_size, hidden_size=c.n_embd, intermediate_size=c.intermediate_size,
                         num_hidden_layers=c.n_layer, num_attention_heads=c.n_head, num_key_value_heads=c.n_kv_head,
                         head_dim=c.head_dim, max_position_embeddings=c.sequence_len, rms_norm_eps=c.rms_norm_eps,
                         rope_parameters=rope, tie_word_embeddings=c.tie_word_embeddings,
                         attention_bias=c.attention_bias, mlp_bias=c.mlp_bias)
    reference = LlamaForCausalLM(config)
    state = {k: v.clone() for k, v in pretrained.state_dict.items()}
    missing, unexpected = reference.load_state_dict(state, strict=False)
    assert not unexpected and set(missing) <= {"lm_head.weight"}, (missing, unexpected)
    return pretrained.model().train(), reference.train(), pretrained.source


def step_lanbot(model, x: torch.Tensor, y: torch.Tensor, precision: str) -> float:
    with autocast(torch.device("cpu"), precision):
        loss = model(x, y)
    loss.backward()
    model.zero_grad(set_to_none=True)
    return loss.item()


def step_transformers(model, x: torch.Tensor, _y: torch.Tensor, precision: str) -> float:
    with autocast(torch.device("cpu"), precision):
        loss = model(input_ids=x, labels=x).loss  # shifts inside: the same T-1 targets per row as lanbot's y
    loss.backward()
    model.zero_grad(set_to_none=True)
    return loss.item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", help="a Hugging Face folder or .gguf (default: the bundled SmolLM2-135M)")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seq", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3, help="timed steps per model and precision")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--precision", choices=("auto", "bf16", "fp32", "both"), default="auto")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    ours, theirs, source = load(args.source)
    print(f"{source}: {ours.num_params() / 1e6:.0f}M parameters, loaded in {time.perf_counter() - t0:.0f}s; "
          f"batch {args.batch} x {args.seq}, {args.threads} threads; CPU native bf16: {cpu_has_bf16()}")
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, ours.config.vocab_size, (args.batch, args.seq), generator=gen)
    y = torch.cat([x[:, 1:], torch.full((args.batch, 1), -1)], dim=1)
    precisions = {"auto": ["bf16" if cpu_has_bf16() else "fp32"], "both": ["fp32", "bf16"]}.get(
        args.precision, [args.precision])
    tokens = args.batch * (args.seq - 1)
    for precision in precisions:
        runs = {"lanbot": (step_lanbot, ours), "transformers": (step_transformers, theirs)}
        losses = {name: fn(model, x, y, precision) for name, (fn, model) in runs.items()}  # warm-up, and the check
        times: dict[str, list[float]] = {name: [] for name in runs}
        for _ in range(args.rounds):
            for name, (fn, model) in runs.items():
                start = time.perf_counter()
                fn(model, x, y, precision)
                times[name].append(time.perf_counter() - start)
        rates = {name: tokens / statistics.median(t) for name, t in times.items()}
        for name in runs:
            print(f"  {precision:>4} {name:>12}: {rates[name]:8.0f} tokens/s  (median of {args.rounds}, "
                  f"loss {losses[name]:.4f})")
        print(f"  {precision:>4} lanbot / transformers: {rates['lanbot'] / rates['transformers']:.2f}x")


if __name__ == "__main__":
    main()

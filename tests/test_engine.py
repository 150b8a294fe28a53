"""Engine: the calculator loop (forced outputs, errors), stopping, batching, streaming, seeds, KV cache."""

from __future__ import annotations

import pytest
import torch
from engine_fixtures import ScriptedModel, random_gpt, tokenizer

from lanbot.evaluation.engine import Engine, run_tool, sample
from lanbot.training.tokenizer import render_for_completion

QUESTION = [{"role": "user", "content": "What is 2 + 3 * 4?"}]


def prompt() -> list[int]:
    return render_for_completion(tokenizer(), QUESTION)


def tool_script(expr: str, after: str, junk_len: int = 4) -> list[int]:
    """Text, a call of `expr`, then junk where the output goes (the engine must force the real one), then
    `after` and <|assistant_end|>."""
    tok = tokenizer()
    sid = tok.special_id
    return (tok.encode("Let me compute.") + [sid("<|python_start|>"), *tok.encode(expr), sid("<|python_end|>")]
            + [tok.encode("x")[0]] * junk_len + tok.encode(after) + [sid("<|assistant_end|>")])


def expected_tokens(expr: str, result: str, after: str) -> list[int]:
    tok = tokenizer()
    sid = tok.special_id
    return (tok.encode("Let me compute.") + [sid("<|python_start|>"), *tok.encode(expr), sid("<|python_end|>")]
            + [sid("<|output_start|>"), *tok.encode(result), sid("<|output_end|>")] + tok.encode(after)
            + [sid("<|assistant_end|>")])


def scripted_engine(scripts: list[list[int]]) -> Engine:
    """An engine over a model that writes `scripts` (one per row)."""
    return Engine(ScriptedModel(scripts, len(prompt()), tokenizer().vocab_size), tokenizer())


def aligned(expr: str, after: str) -> list[int]:
    """A script whose junk is exactly as long as the forced output, so `after` follows it."""
    n = len(tokenizer().encode(run_tool(expr))) + 2
    return tool_script(expr, after, junk_len=n)


@pytest.mark.parametrize("use_cache", [True, False])
def test_tool_call_output_is_forced_and_sampling_continues(use_cache: bool) -> None:
    engine = scripted_engine([aligned("2+3*4", " It is 14.")])
    [answer] = engine.generate(prompt(), max_tokens=80, temperature=1.0, seed=0, use_cache=use_cache)
    assert answer.finished
    assert answer.tokens == expected_tokens("2+3*4", "14", " It is 14.")
    assert answer.tool_calls == [("2+3*4", "14")]
    assert answer.parts == [{"type": "text", "text": "Let me compute."}, {"type": "python", "text": "2+3*4"},
                            {"type": "python_output", "text": "14"}, {"type": "text", "text": " It is 14."}]
    assert answer.text == "Let me compute. It is 14."


def test_bad_expression_yields_error_output_not_a_crash() -> None:
    engine = scripted_engine([aligned("1/0", " Oops."), aligned("__import__('os')", " Hm.")])
    first, second = engine.generate(prompt(), num_samples=2, max_tokens=80, temperature=0)
    assert first.tool_calls == [("1/0", "Error: division by zero")]
    assert second.tool_calls[0][1].startswith("Error: ")
    assert first.finished and second.finished and first.text.endswith("Oops.")


def test_batched_rows_follow_their_own_script_and_stop_independently() -> None:
    tok = tokenizer()
    end = tok.special_id("<|assistant_end|>")
    # the prompt is prefilled once, so every row's first token is drawn from the same logits (row 0's)
    short = tok.encode("Let me compute.")[:1] + tok.encode(" Hi.") + [end]
    engine = scripted_engine([aligned("6*7", " It is 42."), short, aligned("10-4", " Six.")])
    answers = engine.generate(prompt(), num_samples=3, max_tokens=80, temperature=0.5, seed=3)
    assert [a.finished for a in answers] == [True, True, True]
    assert answers[0].tool_calls == [("6*7", "42")] and answers[2].tool_calls == [("10-4", "6")]
    assert answers[1].tokens == short and answers[1].content() == "Let Hi."
    assert isinstance(answers[0].content(), list)


def test_stops_at_max_tokens_unfinished_and_never_after_end() -> None:
    tok = tokenizer()
    script = tok.encode("one two three four five six seven eight nine ten") * 3
    engine = scripted_engine([script])
    [answer] = engine.generate(prompt(), max_tokens=7, temperature=0)
    assert len(answer.tokens) == 7 and not answer.finished
    end = tok.special_id("<|assistant_end|>")
    engine = scripted_engine([tok.encode("Done.") + [end] + tok.encode("more text after the end")])
    [answer] = engine.generate(prompt(), max_tokens=50, temperature=0)
    assert answer.tokens[-1] == end and answer.text == "Done."


def test_stream_events_show_text_calls_and_outputs() -> None:
    engine = scripted_engine([aligned("2+3*4", " It is 14.")])
    events = list(engine.stream(prompt(), max_tokens=80, temperature=0))
    kinds = [e.kind for e in events]
    assert kinds[-1] == "end" and events[-1].text == "end"
    assert [(e.kind, e.text) for e in events if e.kind in ("python", "output")] == [("python", "2+3*4"), ("output", "14")]
    first_call = kinds.index("python")
    assert "".join(e.text for e in events[:first_call]) == "Let me compute."
    assert "".join(e.text for e in events[first_call + 2:-1]) == " It is 14."
    assert kinds.count("text") > 2  # streamed token by token, not in one piece


def test_stream_reports_max_tokens() -> None:
    engine = scripted_engine([tokenizer().encode("never ending story " * 10)])
    events = list(engine.stream(prompt(), max_tokens=5, temperature=0))
    assert events[-1].kind == "end" and events[-1].text == "max_tokens"


def test_kv_cache_matches_full_recompute_on_a_random_gpt() -> None:
    tok = tokenizer()
    engine = Engine(random_gpt(tok.vocab_size, seed=1), tok)
    with_cache = engine.generate(prompt(), num_samples=3, max_tokens=40, temperature=0)
    without = engine.generate(prompt(), num_samples=3, max_tokens=40, temperature=0, use_cache=False)
    assert [a.tokens for a in with_cache] == [a.tokens for a in without]
    # seeded sampling draws the same tokens on both paths too
    a = engine.generate(prompt(), num_samples=2, max_tokens=25, temperature=1.0, top_k=20, seed=7)
    b = engine.generate(prompt(), num_samples=2, max_tokens=25, temperature=1.0, top_k=20, seed=7, use_cache=False)
    assert [x.tokens for x in a] == [x.tokens for x in b]


def test_seed_reproduces_and_samples_differ() -> None:
    tok = tokenizer()
    engine = Engine(random_gpt(tok.vocab_size, seed=2), tok)
    a = engine.generate(prompt(), num_samples=4, max_tokens=20, temperature=1.0, seed=11)
    b = engine.generate(prompt(), num_samples=4, max_tokens=20, temperature=1.0, seed=11)
    c = engine.generate(prompt(), num_samples=4, max_tokens=20, temperature=1.0, seed=12)
    assert [x.tokens for x in a] == [x.tokens for x in b]
    assert [x.tokens for x in a] != [x.tokens for x in c]
    assert len({tuple(x.tokens) for x in a}) > 1  # the batch's rows are sampled independently


def test_sample_temperature_zero_and_top_k() -> None:
    gen = torch.Generator().manual_seed(0)
    logits = torch.tensor([[0.0, 5.0, 1.0, 4.9], [3.0, 0.0, 0.0, 0.0]])
    assert sample(logits, 0.0, None, gen).tolist() == [1, 0]
    draws = {tuple(sample(logits, 1.0, 2, gen).tolist()) for _ in range(200)}
    assert {d[0] for d in draws} == {1, 3}  # only the two best tokens of row 0 are ever drawn


def test_bad_arguments_are_refused() -> None:
    engine = scripted_engine([[0]])
    with pytest.raises(ValueError, match="empty"):
        engine.generate([], max_tokens=5)
    with pytest.raises(ValueError, match="exceeds"):
        engine.generate(prompt(), max_tokens=10_000)


def test_several_prompts_in_one_batch_answer_as_each_alone() -> None:
    # greedy answers of a batch of prompts of different lengths are those of each prompt decoded alone
    tok = tokenizer()
    engine = Engine(random_gpt(tok.vocab_size, seed=5), tok)
    questions = ["Hi", "What is 2 + 3 * 4? Show me.", "Who are you, and who made you?"]
    prompts = [render_for_completion(tok, [{"role": "user", "content": q}]) for q in questions]
    assert len({len(p) for p in prompts}) == 3
    batch = engine.generate_batch(prompts, num_samples=2, max_tokens=30, temperature=0)
    assert [len(answers) for answers in batch] == [2, 2, 2]
    for p, answers in zip(prompts, batch, strict=True):
        alone = engine.generate(p, num_samples=2, max_tokens=30, temperature=0)
        assert [a.tokens for a in answers] == [a.tokens for a in alone]

"""Peak memory of response log-probs + entropy (forward and backward), naive vs chunked, as responses grow.

    .venv/bin/python bench/chunked_memory.py [--lengths 1024,2048,4096,8192] [--vocab 32000] [--chunk 1024]

Naive is what the torch engine did before issue 8: ``model(...).logits`` for every position, then the
response positions. Chunked is `or1_train.engine.chunked.response_logprobs`. The model is a random Qwen2 with
a small hidden size and a real-sized vocabulary, so the [tokens x vocab] logits dominate, as they do at 32K
tokens on a 7B model (32K x 152K x 4 bytes = 20 GB per copy). Each measurement runs in a fresh process:
on a GPU the peak is `torch.cuda.max_memory_allocated`, on a CPU the rise of the process's peak resident
memory above its resident memory just before the pass (after a small warm-up pass, so that library start-up
and the gradient buffers are not counted).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PROMPT_TOKENS = 16


def _rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        import os

        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def measure(mode: str, length: int, vocab: int, hidden: int, chunk: int) -> dict:
    """One pass in this process; returns the peak memory the pass added, in MiB."""
    import resource

    import torch
    from transformers import AutoModelForCausalLM, Qwen2Config

    from or1_train.algo.losses import entropy_from_logits, logprobs_from_logits
    from or1_train.engine.chunked import padded_inputs, response_logprobs

    torch.manual_seed(0)
    config = Qwen2Config(
        vocab_size=vocab,
        hidden_size=hidden,
        intermediate_size=4 * hidden,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=length + PROMPT_TOKENS,
        tie_word_embeddings=False,
    )
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32).to(device)
    prompt = torch.randint(0, vocab, (PROMPT_TOKENS,)).tolist()
    response = torch.randint(0, vocab, (length,)).tolist()
    # one small pass first, so that library start-up (thread pools, kernels' workspaces) is not counted
    warm, _ = response_logprobs(
        model, [prompt], [response[:16]], temperature=1.0, with_entropy=False, pad_id=0, device=device
    )
    warm.sum().backward()
    model.zero_grad(set_to_none=False)  # gradient buffers exist in both modes before the measured pass
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
    else:
        before = _rss_bytes()
    if mode == "naive":
        input_ids, attention = padded_inputs([prompt], [response], 0)
        logits = model(input_ids=input_ids.to(device), attention_mask=attention.to(device)).logits
        picked = logits[0, PROMPT_TOKENS - 1 : PROMPT_TOKENS - 1 + length]
        lp = logprobs_from_logits(picked, torch.tensor(response, device=device))
        ent = entropy_from_logits(picked)
    else:
        lp, ent = response_logprobs(
            model,
            [prompt],
            [response],
            temperature=1.0,
            with_entropy=True,
            pad_id=0,
            device=device,
            chunk_tokens=chunk,
        )
    (lp.sum() + 0.01 * ent.sum()).backward()
    if device == "cuda":
        peak = torch.cuda.max_memory_allocated() - before
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
    return {"mode": mode, "length": length, "peak_mib": peak / 2**20, "device": device}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lengths", default="1024,2048,4096,8192")
    parser.add_argument("--vocab", type=int, default=32000)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--chunk", type=int, default=1024)
    parser.add_argument("--one", nargs=2, metavar=("MODE", "LENGTH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        mode, length = args.one
        print(json.dumps(measure(mode, int(length), args.vocab, args.hidden, args.chunk)))
        return
    lengths = [int(n) for n in args.lengths.split(",")]
    print(
        f"vocab {args.vocab}, hidden {args.hidden}, 2 layers, chunk {args.chunk} tokens; forward + backward "
        "of log-probs and entropy for one response"
    )
    print(f"{'response tokens':>15} {'logits (1 copy)':>16} {'naive peak':>12} {'chunked peak':>13}")
    for length in lengths:
        row = {}
        for mode in ("naive", "chunked"):
            cmd = [
                sys.executable,
                __file__,
                "--one",
                mode,
                str(length),
                "--vocab",
                str(args.vocab),
                "--hidden",
                str(args.hidden),
                "--chunk",
                str(args.chunk),
            ]
            out = (
                subprocess.run(cmd, capture_output=True, text=True, check=True)
                .stdout.strip()
                .splitlines()[-1]
            )
            row[mode] = json.loads(out)["peak_mib"]
        logits = length * args.vocab * 4 / 2**20
        print(
            f"{length:>15} {logits:>13.0f} MiB {row['naive']:>8.0f} MiB {row['chunked']:>9.0f} MiB",
            flush=True,
        )


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Training memory per GPU, by arithmetic, for DDP and FSDP2; checked against a measured run.

    python tools/memory_plan.py                 # the 7B plan of docs/MEMORY.md
    python tools/memory_plan.py --measure       # a small Qwen2 trained on this CPU vs the formula

The formula counts, per GPU: the weights (frozen ones in the compute dtype, trained ones
in float32), their gradients (float32) and AdamW's two moments (float32), divided by the
ranks under FSDP2; plus the activations saved for the backward pass, which no strategy
shards: per token and decoder layer ``6h + 2kv + 4i`` values (two RMSNorms' inputs and
outputs, the rotated q and k, v, the attention output, and the MLP's gate, up, SiLU and
product; flash/SDPA attention keeps no s x s matrix), and the logits with the loss's
log-softmax (``2V`` float32 values per token). The backward pass peaks at its start,
when the gradients of those two (``2V`` more) exist beside everything saved; one
layer's MLP gradients (``3i``) come and go after it.
"""

from __future__ import annotations

import argparse
import os
import resource
from dataclasses import dataclass

GB = 1e9


@dataclass(frozen=True)
class Decoder:
    """A Qwen2-style decoder: hidden, MLP intermediate, layers, key/value width, vocab."""

    hidden: int
    intermediate: int
    layers: int
    kv_dim: int
    vocab: int
    params: float

    def activations(self, tokens: float, dtype_bytes: int) -> float:
        """Saved for the backward pass, plus its peak transients (see the module's doc)."""
        per_layer = 6 * self.hidden + 2 * self.kv_dim + 4 * self.intermediate
        transient = 2 * self.vocab * 4 + 3 * self.intermediate * dtype_bytes
        return tokens * (self.layers * per_layer * dtype_bytes + 2 * self.vocab * 4 + transient)


@dataclass(frozen=True)
class Encoder:
    """A Transformer audio encoder (Whisper): per frame and layer ``8d + 2f`` values."""

    dim: int
    ffn: int
    layers: int
    params: float

    def activations(self, frames: float, dtype_bytes: int) -> float:
        return frames * self.layers * (8 * self.dim + 2 * self.ffn) * dtype_bytes


def states(trained: float, frozen: float, dtype_bytes: int) -> dict[str, float]:
    """Bytes of weights, gradients and AdamW moments (float32 master copies when trained)."""
    return {"weights": frozen * dtype_bytes + trained * 4, "gradients": trained * 4,
            "adam": trained * 8}


QWEN25_7B = Decoder(hidden=3584, intermediate=18944, layers=28, kv_dim=512, vocab=152064,
                    params=7.62e9)
WHISPER_LARGE = Encoder(dim=1280, ffn=5120, layers=32, params=0.637e9)


def plan_7b(ranks: int = 8, max_duration: float = 200.0, gpu_gb: float = 80.0) -> str:
    """The table of docs/MEMORY.md: Qwen2.5-7B + Whisper-large-v3 encoder, bf16 compute."""
    audio_tokens_per_s, text_tokens_per_s = 12.5, 4.0  # 50 Hz frames, projector /4
    tokens = max_duration * (audio_tokens_per_s + text_tokens_per_s)
    frames = max_duration * 50  # 50 Hz after the convolutions, clips not padded to 30 s
    act = QWEN25_7B.activations(tokens, 2)
    enc_act = WHISPER_LARGE.activations(frames, 2)
    rows = []
    cases = [
        ("LoRA r=64 on the LLM, encoder frozen", 0.16e9, QWEN25_7B.params + WHISPER_LARGE.params,
         act),
        ("LoRA + encoder trained", 0.16e9 + WHISPER_LARGE.params, QWEN25_7B.params, act + enc_act),
        ("LLM and encoder fully trained", QWEN25_7B.params + WHISPER_LARGE.params, 0.0,
         act + enc_act),
    ]
    for name, trained, frozen, activations in cases:
        s = states(trained, frozen, 2)
        total_states = sum(s.values())
        # FSDP2 also holds a layer's gathered weights, and prefetches the next one's.
        gathered = 2 * QWEN25_7B.params / QWEN25_7B.layers * 2
        for strategy, shard, extra in (("DDP", 1, 0.0), ("FSDP2", ranks, gathered)):
            per_gpu = total_states / shard + activations + extra
            rows.append(
                f"| {name} | {strategy} | {s['weights'] / shard / GB:.1f} | "
                f"{s['gradients'] / shard / GB:.1f} | {s['adam'] / shard / GB:.1f} | "
                f"{activations / GB:.1f} | {per_gpu / GB:.1f} | "
                f"{'yes' if per_gpu / GB < 0.9 * gpu_gb else 'no'} |"
            )
    head = (
        f"{ranks} x {gpu_gb:g} GB, max_duration {max_duration:g} s per GPU "
        f"({tokens:.0f} LLM tokens, {frames:.0f} encoder frames), bf16 compute\n\n"
        "| what is trained | strategy | weights GB | gradients GB | AdamW GB | "
        "activations GB | per GPU GB | fits (< 90%) |\n|---|---|---|---|---|---|---|---|"
    )
    return head + "\n" + "\n".join(rows)


def _rss() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def measure(batch: int, seq: int, steps: int) -> None:
    """Train a small Qwen2 (every weight, AdamW, float32) on this CPU: the peak resident
    memory above the built model, against gradients + AdamW + activations."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    cfg = Qwen2Config(hidden_size=512, intermediate_size=2752, num_hidden_layers=6,
                      num_attention_heads=8, num_key_value_heads=2, vocab_size=16000,
                      max_position_embeddings=seq, tie_word_embeddings=False)
    model = Qwen2ForCausalLM(cfg)
    model.config._attn_implementation = "sdpa"
    params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    ids = torch.randint(0, cfg.vocab_size, (batch, seq))
    with torch.no_grad():
        model(input_ids=ids[:, :8])  # libraries' first-use allocations, before the baseline
    base = _rss()
    for _ in range(steps):
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base
    dec = Decoder(hidden=512, intermediate=2752, layers=6, kv_dim=128, vocab=16000, params=params)
    s = states(params, 0, 4)
    predicted = s["gradients"] + s["adam"] + dec.activations(batch * seq, 4)
    print(f"small Qwen2: {params / 1e6:.1f} M parameters, {batch} x {seq} tokens, {steps} steps")
    print(f"measured peak above the model: {peak / GB:.3f} GB")
    print(f"formula (gradients {s['gradients'] / GB:.3f} + AdamW {s['adam'] / GB:.3f} + "
          f"activations {dec.activations(batch * seq, 4) / GB:.3f}): {predicted / GB:.3f} GB")
    print(f"formula / measured: {predicted / peak:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--measure", action="store_true")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seq", type=int, default=512)
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args()
    if args.measure:
        measure(args.batch, args.seq, args.steps)
    else:
        print(plan_7b())


if __name__ == "__main__":
    main()

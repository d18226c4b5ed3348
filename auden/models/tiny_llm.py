"""Tiny chat LLMs built offline: a byte-level BPE tokenizer trained on a few texts and a
randomly initialised Qwen2, saved as a Hugging Face folder.

Tests and the offline ``mini_en`` recipe need a causal LLM without downloading one. The
folder written here loads with ``AutoModelForCausalLM.from_pretrained`` and
``AutoTokenizer.from_pretrained`` exactly like a real Qwen2 checkpoint, chat template
(ChatML) and ``<|AUDIO|>`` token included::

    tokenizer = train_chat_tokenizer(["hello world", "good morning"], vocab_size=300)
    save_tiny_llm("exp/tiny_llm", tokenizer, TinyLlmSize(hidden_size=64))

Command line: ``python -m auden.models.tiny_llm --text-file texts.txt --out exp/tiny_llm``.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

from auden.atomic import atomic_folder

logger = logging.getLogger(__name__)

PAD_TOKEN = "<|endoftext|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
AUDIO_TOKEN = "<|AUDIO|>"

# ChatML as Qwen2 renders it, minus the default system prompt. A user turn's content may
# also be a list of parts ({"type": "audio"} / {"type": "text", "text": ...}) joined by a
# space, the same rendering auden.models.audio_llm uses for parts lists.
CHATML_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{- '<|im_start|>' + message['role'] + '\\n' -}}"
    "{%- if message['content'] is string -%}{{- message['content'] -}}"
    "{%- else -%}{%- for part in message['content'] -%}"
    "{{- ' ' if not loop.first else '' -}}"
    "{%- if part['type'] == 'audio' -%}{{- '" + AUDIO_TOKEN + "' -}}"
    "{%- elif part['type'] == 'text' -%}{{- part['text'] -}}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "{{- '<|im_end|>\\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
)


@dataclass
class TinyLlmSize:
    """Width and depth of the random Qwen2; the defaults train in seconds on a CPU."""

    hidden_size: int = 64
    intermediate_size: int = 128
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    max_position_embeddings: int = 4096


def train_chat_tokenizer(
    texts: Iterable[str], vocab_size: int = 500, *, with_audio_token: bool = True
) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE on ``texts`` and wrap it as a chat tokenizer.

    Byte-level means every string encodes (no unknown tokens). Special tokens: pad
    ``<|endoftext|>``, ChatML ``<|im_start|>``/``<|im_end|>`` (eos) and, unless
    ``with_audio_token`` is False, ``<|AUDIO|>``.
    """
    special = [PAD_TOKEN, IM_START, IM_END] + ([AUDIO_TOKEN] if with_audio_token else [])
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=1,
        special_tokens=special,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    # The chat scaffolding is text the model sees in every sample: learn its merges too.
    scaffold = ["system\n", "user\n", "assistant\n"]
    bpe.train_from_iterator(list(texts) + scaffold, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        eos_token=IM_END,
        pad_token=PAD_TOKEN,
        additional_special_tokens=[t for t in special if t not in (PAD_TOKEN, IM_END)],
    )
    tokenizer.chat_template = CHATML_TEMPLATE
    tokenizer.padding_side = "right"
    return tokenizer


def build_tiny_llm(
    tokenizer: PreTrainedTokenizerFast, size: TinyLlmSize | None = None, seed: int = 0
) -> Qwen2ForCausalLM:
    """A randomly initialised Qwen2 (tied embeddings) whose vocabulary fits ``tokenizer``."""
    size = size or TinyLlmSize()
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=size.hidden_size,
        intermediate_size=size.intermediate_size,
        num_hidden_layers=size.num_hidden_layers,
        num_attention_heads=size.num_attention_heads,
        num_key_value_heads=size.num_key_value_heads,
        max_position_embeddings=size.max_position_embeddings,
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.bos_token_id = None
    return model


def save_llm_folder(out: str | Path, model, tokenizer) -> Path:
    """Save a transformers causal LM and its tokenizer as one folder, atomically: what
    ``model.llm.pretrained_model`` and ``AutoModelForCausalLM.from_pretrained`` read."""
    out = Path(out)
    with atomic_folder(out) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return out


def save_tiny_llm(
    out: str | Path,
    tokenizer: PreTrainedTokenizerFast,
    size: TinyLlmSize | None = None,
    seed: int = 0,
) -> Path:
    """Build a random tiny Qwen2 for ``tokenizer`` and save both into folder ``out``."""
    model = build_tiny_llm(tokenizer, size, seed)

    out = save_llm_folder(out, model, tokenizer)
    logger.info(
        "saved tiny Qwen2 (%d params, vocab %d) to %s",
        sum(p.numel() for p in model.parameters()),
        len(tokenizer),
        out,
    )
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m auden.models.tiny_llm",
        description="Train a byte-level BPE on a text file and save a random tiny Qwen2 chat LLM.",
    )
    parser.add_argument("--text-file", required=True, help="training texts, one per line")
    parser.add_argument("--out", required=True, help="output folder (Hugging Face format)")
    parser.add_argument("--vocab-size", type=int, default=500)
    parser.add_argument("--hidden-size", type=int, default=TinyLlmSize.hidden_size)
    parser.add_argument("--intermediate-size", type=int, default=TinyLlmSize.intermediate_size)
    parser.add_argument("--num-layers", type=int, default=TinyLlmSize.num_hidden_layers)
    parser.add_argument("--num-heads", type=int, default=TinyLlmSize.num_attention_heads)
    parser.add_argument("--num-kv-heads", type=int, default=TinyLlmSize.num_key_value_heads)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")

    text_file = Path(args.text_file)
    if not text_file.is_file():
        parser.error(f"--text-file '{text_file}' does not exist")
    texts = [line.strip() for line in text_file.read_text(encoding="utf-8").splitlines()]
    texts = [t for t in texts if t]
    if not texts:
        parser.error(f"--text-file '{text_file}' has no non-empty line")
    tokenizer = train_chat_tokenizer(texts, vocab_size=args.vocab_size)
    size = TinyLlmSize(
        hidden_size=args.hidden_size,
        intermediate_size=args.intermediate_size,
        num_hidden_layers=args.num_layers,
        num_attention_heads=args.num_heads,
        num_key_value_heads=args.num_kv_heads,
    )
    save_tiny_llm(args.out, tokenizer, size, seed=args.seed)


if __name__ == "__main__":
    main()

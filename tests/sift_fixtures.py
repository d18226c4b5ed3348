"""SIFT test material: a tiny corpus with voice metadata, and tiny LLMs whose replies are known.

``make_bigram_llm`` writes a real Qwen2 folder (loaded by ``from_pretrained`` like any
LLM) whose layers add nothing to the residual stream, so the next token depends only on
the current one: its lm_head is the bigram graph of a few sentences. A single sentence of
distinct tokens makes it write exactly that sentence; several make it branch, so what it
writes depends on each cut's sampling seed; ``end=False`` makes it loop until the cap.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import torch
from lhotse import CutSet, load_manifest
from lhotse.utils import fastcopy
from tiny_audio_llm import TEXTS
from transformers import Qwen2Config, Qwen2ForCausalLM

from auden.atomic import atomic_folder
from auden.models.tiny_llm import train_chat_tokenizer

# Raw voice fields as corpora write them; None: the field is absent.
RAW_METADATA = [
    {"emotion": "ang", "gender": "F", "age": "fourties", "speaking_rate": 4.0, "volume_db": -20.0},
    {"emotion": "happy", "gender": "male", "age": 17, "speaking_rate": 7.5, "accent": "Scottish"},
    {"emotion": "bored", "volume_db": -5.0},  # an emotion no map knows: left out
    {"gender": "m", "speaking_rate": 11.0, "volume_db": -12.0},  # volume in between: omitted
    {},  # nothing: pace from words and duration only
    {"emotion": "sur", "age": "seventies"},
]
EXPECTED_METADATA = [
    {"gender": "female", "age": "middle-age adult", "emotion": "angry", "pace": "slow", "volume": "quiet"},
    {"gender": "male", "age": "teenager", "emotion": "happy", "pace": "normal", "accent": "Scottish"},
    {"volume": "loud"},
    {"gender": "male", "pace": "fast"},
    {},
    {"age": "senior", "emotion": "surprise"},
]  # fmt: skip
# pace from words/duration is filled in by sift_corpus (it depends on the clip's duration)

GENERATION_PREFIXES = ("", "Sounds like")


def sift_corpus(tiny_corpus, folder: Path, num_cuts: int = 12) -> Path:
    """The tiny corpus's first cuts (real wavs, fbank) with RAW_METADATA cycled into custom,
    and one cut without a transcript."""
    cuts = list(load_manifest(tiny_corpus.cuts))[:num_cuts]
    out = []
    for i, cut in enumerate(cuts):
        sup = cut.supervisions[0]
        custom = {**(sup.custom or {}), **RAW_METADATA[i % len(RAW_METADATA)]}
        text = "" if i == num_cuts - 1 else sup.text
        out.append(fastcopy(cut, supervisions=[fastcopy(sup, custom=custom, text=text)]))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "sift_in_cuts.jsonl.gz"
    CutSet.from_cuts(out).to_file(path)
    return path


def make_bigram_llm(
    folder: Path, sentences: list[str], *, end: bool = True, scale: float = 40.0
) -> Path:
    """A Qwen2 folder that writes the bigram language of ``sentences`` after any chat prompt."""
    tokenizer = train_chat_tokenizer(TEXTS + sentences + list(GENERATION_PREFIXES), vocab_size=400)
    hidden = 256  # wide enough for near-orthogonal random token embeddings
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=4,
        num_key_value_heads=2,
        tie_word_embeddings=False,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
    )
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(config)
    starts = set()
    for prefix in GENERATION_PREFIXES:
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": "x"}], tokenize=False, add_generation_prompt=True
        )
        starts.add(tokenizer(text + prefix, add_special_tokens=False).input_ids[-1])
    edges: dict[int, set[int]] = defaultdict(set)
    for sentence in sentences:
        ids = tokenizer(sentence, add_special_tokens=False).input_ids
        chain = ids + [tokenizer.eos_token_id] if end else ids + ids[:1]
        for start in starts:
            edges[start].add(chain[0])
        for a, b in zip(chain, chain[1:]):
            edges[a].add(b)
    with torch.no_grad():
        for layer in model.model.layers:  # the residual stream is the token embedding alone
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        emb = torch.randn(len(tokenizer), hidden)
        model.model.embed_tokens.weight.copy_(emb)
        model.model.norm.weight.fill_(1.0)
        head = torch.zeros(len(tokenizer), hidden)
        for a, nexts in edges.items():
            for b in nexts:
                head[b] += scale * emb[a] / emb[a].norm() / hidden**0.5
        model.lm_head.weight.copy_(head)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id

    with atomic_folder(folder) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return folder

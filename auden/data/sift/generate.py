"""Batched chat generation with a local causal LLM, one random stream per request.

``transformers``' own sampling draws every row of a batch from one global generator, so a
row's text would change with its batch neighbours and the batch size. Here each request
carries its own seed: a logits processor samples each row from its own
``torch.Generator`` and hands ``generate`` a one-hot choice, so a cut's target depends
on its seed and the model, and a re-run (or a resumed run) writes the same text.

    writer = ChatWriter.from_pretrained("models/Qwen2.5-3B-Instruct", SamplingConfig())
    outs = writer.generate([Request(system="Be brief.", user="hello", seed=7)])
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    GenerationConfig,
    LogitsProcessor,
    LogitsProcessorList,
)

from auden.data.sift.options import SamplingConfig

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Request:
    system: str
    user: str
    seed: int
    assistant_prefix: str = ""  # forced start of the reply, returned as part of it


@dataclass(frozen=True)
class Generation:
    text: str  # the reply, prefix included, special tokens removed
    finished: bool  # ended with an end-of-turn token (False: stopped by the token cap)
    num_tokens: int


class PerRowSampler(LogitsProcessor):
    """Samples each row from its own seeded generator; returns one-hot scores."""

    def __init__(self, seeds: list[int], sampling: SamplingConfig, device: torch.device) -> None:
        self.sampling = sampling
        self.generators = [torch.Generator(device=device).manual_seed(s) for s in seeds]

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        s = self.sampling
        scores = scores.float()
        if s.temperature == 0:
            choice = scores.argmax(dim=-1, keepdim=True)
        else:
            logits = scores / s.temperature
            if s.top_k > 0:
                kth = torch.topk(logits, min(s.top_k, logits.size(-1)), dim=-1).values[..., -1:]
                logits = logits.masked_fill(logits < kth, float("-inf"))
            if s.top_p < 1:
                sorted_logits, order = logits.sort(dim=-1, descending=True)
                cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
                # drop a token when the tokens before it already reach top_p
                drop_sorted = (cumulative - sorted_logits.softmax(dim=-1)) >= s.top_p
                drop = drop_sorted.scatter(-1, order, drop_sorted)
                logits = logits.masked_fill(drop, float("-inf"))
            probs = logits.softmax(dim=-1)
            choice = torch.stack(
                [torch.multinomial(probs[i], 1, generator=g) for i, g in enumerate(self.generators)]
            )
        out = torch.full_like(scores, float("-inf"))
        return out.scatter(-1, choice, 0.0)


class ChatWriter:
    """A chat LLM folder (any ``AutoModelForCausalLM`` with a chat template) that answers requests."""

    def __init__(self, model, tokenizer, sampling: SamplingConfig, source: str = "") -> None:
        if not getattr(tokenizer, "chat_template", None):
            raise ValueError(f"LLM '{source}': its tokenizer has no chat template")
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.sampling = sampling
        eos = model.generation_config.eos_token_id
        eos = eos if isinstance(eos, list) else [eos] if eos is not None else []
        if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in eos:
            eos.append(tokenizer.eos_token_id)
        self.eos_ids = eos

    @classmethod
    def from_pretrained(
        cls, folder: str | Path, sampling: SamplingConfig, device: str = "auto", dtype: str = "auto"
    ) -> ChatWriter:
        folder = Path(folder)
        if not (folder / "config.json").is_file():
            raise FileNotFoundError(f"--llm '{folder}': not a model folder (no config.json)")
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if dtype == "auto":
            dtype = "bfloat16" if device.startswith("cuda") else "float32"
        tokenizer = AutoTokenizer.from_pretrained(folder)
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=getattr(torch, dtype))
        logger.info("LLM %s on %s (%s)", folder, device, dtype)
        return cls(model.to(device), tokenizer, sampling, source=str(folder))

    def prompt(self, request: Request) -> str:
        messages = [
            {"role": "system", "content": request.system},
            {"role": "user", "content": request.user},
        ]
        text = self.tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True
        )
        return text + request.assistant_prefix

    @torch.inference_mode()
    def generate(self, requests: list[Request]) -> list[Generation]:
        if not requests:
            return []
        device = self.model.device
        batch = self.tokenizer(
            [self.prompt(r) for r in requests],
            return_tensors="pt",
            padding=True,
            add_special_tokens=False,  # the chat template already holds them
        ).to(device)
        config = GenerationConfig(
            max_new_tokens=self.sampling.max_new_tokens,
            do_sample=False,  # the sampling happens in PerRowSampler
            num_beams=1,
            repetition_penalty=self.sampling.repetition_penalty,
            eos_token_id=self.eos_ids,
            pad_token_id=self.tokenizer.pad_token_id,
        )
        sampler = PerRowSampler([r.seed for r in requests], self.sampling, device)
        out = self.model.generate(
            **batch, generation_config=config, logits_processor=LogitsProcessorList([sampler])
        )
        new = out[:, batch["input_ids"].shape[1] :].tolist()
        results = []
        for request, tokens in zip(requests, new):
            ends = [i for i, t in enumerate(tokens) if t in self.eos_ids]
            finished = bool(ends)
            tokens = tokens[: ends[0]] if ends else tokens
            text = self.tokenizer.decode(tokens, skip_special_tokens=True)
            if request.assistant_prefix and text[:1].isalnum():
                text = " " + text  # the model went on without the space its tokens usually carry
            text = (request.assistant_prefix + text).strip()
            results.append(Generation(text=text, finished=finished, num_tokens=len(tokens)))
        return results

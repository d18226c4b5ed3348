"""Teach a causal LLM a recipe's tasks from text alone, before it ever hears audio.

Real recipes start from a pretrained LLM that already reads, answers and continues text;
the offline ``mini_en`` recipe starts from a random tiny Qwen2 and makes up for it here.
Every training cut whose supervision has spoken words becomes a text conversation in
which those words stand where the audio will later be::

    user:      "what is three plus four Answer the question in the audio."
    assistant: "seven"

so that, when the audio LLM is trained, the projector only has to make the audio look
like the words the LLM already knows how to use. Only the assistant reply is learned
(:class:`auden.models.chat_inputs.ChatTokenizer` finds it from the chat template).

    python -m auden.training.llm_pretrain --llm data/llm \
        --data-config configs/train_data.yaml --out exp/llm --num-steps 600
"""

from __future__ import annotations

import argparse
import logging
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from lhotse import load_manifest_lazy
from transformers import AutoModelForCausalLM, AutoTokenizer

from auden.data.config import DataSource, load_data_config
from auden.data.prompts import PromptSet
from auden.data.tasks import get_task
from auden.models.chat_inputs import ChatTokenizer
from auden.models.tiny_llm import save_llm_folder

logger = logging.getLogger(__name__)


@dataclass
class TextExample:
    """One text conversation: the words spoken in a clip, the task's prompt and its target."""

    spoken: str
    prompt: str
    target: str

    def messages(self) -> list[dict]:
        content = [{"type": "text", "text": self.spoken}, {"type": "text", "text": self.prompt}]
        return [
            {"role": "user", "content": content},
            {"role": "assistant", "content": self.target},
        ]


@dataclass
class PretrainSettings:
    num_steps: int = 600
    batch_size: int = 32
    lr: float = 2e-3
    warmup_steps: int = 50
    weight_decay: float = 0.01
    seed: int = 42
    log_interval: int = 50


def collect_examples(
    sources: list[DataSource], seed: int, label_fields: tuple[str, ...] = ()
) -> list[TextExample]:
    """A text example for every cut that carries spoken words or labels, per source's task.

    ``label_fields`` (``supervision.custom`` keys, e.g. gender, speed, pitch) are read out
    before the words ("female fast high the red cat"), as an audio LLM whose encoder has
    label heads shows them to the LLM (``model.labels`` with ``projector.type=ctc``). A
    clip without words is read by its labels alone (an `event` label: "rising tone").
    """
    examples = []
    for source in sources:
        task = get_task(source.task)
        prompts = (
            PromptSet.from_file(source.prompt_file)
            if source.prompt_file
            else PromptSet.default_for(source.task)
        )
        for cut in load_manifest_lazy(source.manifest):
            spoken = (cut.supervisions[0].text or "").strip() if cut.supervisions else ""
            custom = (cut.supervisions[0].custom or {}) if cut.supervisions else {}
            labels = [str(custom[f]) for f in label_fields if custom.get(f)]
            if not spoken and not labels:
                continue  # a sound no label names: nothing to read
            prompt = task.instruction(cut) or prompts.draw(cut.id, epoch=0, seed=seed)
            words = " ".join([*labels, spoken]).strip()
            examples.append(TextExample(words, prompt, task.target(cut)))
    if not examples:
        raise ValueError("no cut in the data config has spoken text to learn from")
    return examples


def encode_examples(chat: ChatTokenizer, examples: list[TextExample]) -> dict[str, torch.Tensor]:
    """Right-padded input ids, attention mask and assistant-only labels."""
    rows, label_rows = [], []
    for i, example in enumerate(examples):
        ids: list[int] = []
        labels: list[int] = []
        for text, is_label in chat.segments(example.messages(), f"example {i}", for_generation=False):
            piece = chat.tokenizer(text, add_special_tokens=False).input_ids
            ids += piece
            labels += piece if is_label else [-100] * len(piece)
        rows.append(ids)
        label_rows.append(labels)
    length = max(len(r) for r in rows)
    input_ids = torch.full((len(rows), length), chat.pad_token_id, dtype=torch.int64)
    labels = torch.full((len(rows), length), -100, dtype=torch.int64)
    mask = torch.zeros((len(rows), length), dtype=torch.int64)
    for i, (row, label_row) in enumerate(zip(rows, label_rows)):
        input_ids[i, : len(row)] = torch.tensor(row)
        labels[i, : len(row)] = torch.tensor(label_row)
        mask[i, : len(row)] = 1
    return {"input_ids": input_ids, "attention_mask": mask, "labels": labels}


def pretrain_llm(
    llm_dir: str | Path,
    out_dir: str | Path,
    examples: list[TextExample],
    settings: PretrainSettings,
    audio_token: str = "<|AUDIO|>",
) -> dict[str, float]:
    """Train every weight of the LLM in ``llm_dir`` on ``examples``; save it to ``out_dir``."""
    torch.manual_seed(settings.seed)
    rng = random.Random(settings.seed)
    tokenizer = AutoTokenizer.from_pretrained(llm_dir)
    model = AutoModelForCausalLM.from_pretrained(llm_dir, dtype=torch.float32)
    chat = ChatTokenizer(tokenizer, audio_token)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay
    )

    def lr_at(step: int) -> float:  # linear warmup, then cosine to a tenth
        if step < settings.warmup_steps:
            return (step + 1) / settings.warmup_steps
        progress = (step - settings.warmup_steps) / max(1, settings.num_steps - settings.warmup_steps)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_at)
    model.train()
    order: list[int] = []
    start = time.monotonic()
    loss_sum = tokens = correct = 0.0
    last: dict[str, float] = {}
    for step in range(settings.num_steps):
        if len(order) < settings.batch_size:
            extra = list(range(len(examples)))
            rng.shuffle(extra)
            order += extra
        picked, order = order[: settings.batch_size], order[settings.batch_size :]
        batch = encode_examples(chat, [examples[i] for i in picked])
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        targets = batch["labels"][:, 1:]
        logits = logits[:, :-1]
        valid = targets != -100
        loss = torch.nn.functional.cross_entropy(logits[valid], targets[valid])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        n = int(valid.sum())
        loss_sum += loss.item() * n
        tokens += n
        correct += int((logits[valid].argmax(-1) == targets[valid]).sum())
        if (step + 1) % settings.log_interval == 0 or step + 1 == settings.num_steps:
            elapsed = time.monotonic() - start
            eta = elapsed / (step + 1) * (settings.num_steps - step - 1)
            logger.info(
                "llm pretrain step %d/%d: loss %.4f, token acc %.3f, lr %.2e, %.0f s elapsed, ETA %.0f s",
                step + 1, settings.num_steps, loss_sum / tokens, correct / tokens,
                scheduler.get_last_lr()[0], elapsed, eta,
            )
            last = {"loss": loss_sum / tokens, "token_acc": correct / tokens}
            loss_sum = tokens = correct = 0.0

    save_llm_folder(out_dir, model, tokenizer)
    logger.info("saved the pretrained LLM to %s", out_dir)
    return last


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--llm", required=True, help="a transformers causal-LM folder")
    parser.add_argument("--data-config", required=True, help="a training data config (yaml)")
    parser.add_argument("--out", required=True, help="where to save the trained LLM folder")
    parser.add_argument("--audio-token", default="<|AUDIO|>")
    parser.add_argument(
        "--label-fields", nargs="*", default=[],
        help="supervision.custom fields read out before the words (the audio LLM's label heads)",
    )
    defaults = PretrainSettings()
    for name, value in vars(defaults).items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    settings = PretrainSettings(**{k: getattr(args, k) for k in vars(defaults)})
    examples = collect_examples(
        load_data_config(args.data_config), settings.seed, tuple(args.label_fields)
    )
    logger.info("%d text examples from %s", len(examples), args.data_config)
    pretrain_llm(args.llm, args.out, examples, settings, audio_token=args.audio_token)


if __name__ == "__main__":
    main()

"""Auxiliary heads on an encoder's frames: CTC over the LLM's tokens, utterance labels.

Both keep the encoder honest while something else trains it: a CTC head keeps it
transcribing when the audio LLM adapts it, and label heads (gender, speed, emotion...)
teach it what a transcript alone teaches it to ignore, the voice::

    heads = LabelHeads(encoder.output_dim, [LabelHeadConfig("gender", ["male", "female"])])
    loss, correct, counted = heads.loss(enc_out, {"gender": ["male", None]})
    heads.predict(enc_out)  # {"gender": ["male", "female"]}
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from auden.types import EncoderOutput

BLANK_ID = 0


@dataclass
class LabelHeadConfig:
    """One utterance-level label: read from ``supervision.custom[field]``, one of ``classes``.

    Cuts without the field (or with a value outside ``classes``) add no loss.
    """

    field: str = ""
    classes: list[str] = dataclasses.field(default_factory=list)
    weight: float = 0.1  # times the mean cross-entropy, added to the model's loss


def pooled_frames(out: EncoderOutput) -> torch.Tensor:
    """The mean of each row's valid frames ``[B, D]``: one vector per utterance."""
    valid = (~out.padding_mask()).to(out.frames.dtype).unsqueeze(-1)
    return (out.frames * valid).sum(1) / valid.sum(1).clamp(min=1.0)


class LabelHeads(nn.Module):
    """One linear classifier per label over the mean-pooled encoder frames."""

    def __init__(self, dim: int, configs: Sequence[LabelHeadConfig]) -> None:
        super().__init__()
        self.configs = {c.field: c for c in configs}
        for c in configs:
            if not c.field or len(c.classes) < 2:
                raise ValueError(
                    f"model.labels entry {c}: needs a field name and at least two classes"
                )
        if len(self.configs) != len(configs):
            raise ValueError(f"model.labels names a field twice: {[c.field for c in configs]}")
        self.heads = nn.ModuleDict({c.field: nn.Linear(dim, len(c.classes)) for c in configs})

    @property
    def fields(self) -> list[str]:
        return list(self.configs)

    def loss(
        self, out: EncoderOutput, labels: dict[str, list[str | None]]
    ) -> tuple[torch.Tensor, dict[str, tuple[int, int]]]:
        """The weighted sum of mean cross-entropies, and (correct, counted) per field."""
        pooled = pooled_frames(out)
        total = pooled.new_zeros(())
        counts = {}
        for name, head in self.heads.items():
            cfg = self.configs[name]
            values = labels.get(name) or [None] * pooled.shape[0]
            target = torch.tensor(
                [cfg.classes.index(v) if v in cfg.classes else -100 for v in values],
                device=pooled.device,
            )
            logits = head(pooled)
            counted = int((target >= 0).sum())
            if counted:
                total = total + cfg.weight * F.cross_entropy(logits, target, ignore_index=-100)
            correct = int(((logits.argmax(-1) == target) & (target >= 0)).sum())
            counts[name] = (correct, counted)
        return total, counts

    def probabilities(self, out: EncoderOutput) -> list[torch.Tensor]:
        """Each head's class probabilities ``[B, num_classes]``, in config order."""
        pooled = pooled_frames(out)
        return [head(pooled).softmax(-1) for head in self.heads.values()]

    @torch.no_grad()
    def predict(self, out: EncoderOutput) -> dict[str, list[str]]:
        pooled = pooled_frames(out)
        return {
            name: [self.configs[name].classes[i] for i in head(pooled).argmax(-1).tolist()]
            for name, head in self.heads.items()
        }


def ctc_loss(
    log_probs: torch.Tensor, lens: torch.Tensor, labels: list[list[int]]
) -> tuple[torch.Tensor, int]:
    """Summed CTC loss of ``labels`` (ids already past the blank) and the label count."""
    label_lens = torch.tensor([len(x) for x in labels], dtype=torch.int64)
    flat = torch.tensor([i for row in labels for i in row], dtype=torch.int64)
    loss_sum = F.ctc_loss(
        log_probs.transpose(0, 1).float(),
        flat.to(log_probs.device),
        lens,
        label_lens.to(log_probs.device),
        blank=BLANK_ID,
        reduction="sum",
        zero_infinity=True,
    )
    return loss_sum, int(label_lens.sum())


def ctc_greedy(log_probs: torch.Tensor, lens: torch.Tensor) -> list[list[int]]:
    """Best class per frame, repeats merged, blanks dropped; ids shifted back to the tokenizer's."""
    best = log_probs.argmax(dim=-1).cpu()
    rows = []
    for row, n in zip(best, lens.cpu().tolist()):
        ids = torch.unique_consecutive(row[:n])
        rows.append([int(i) - 1 for i in ids if int(i) != BLANK_ID])
    return rows

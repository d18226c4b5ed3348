"""Auxiliary heads on an encoder's frames: CTC over the LLM's tokens, utterance labels.

Both keep the encoder honest while something else trains it: a CTC head keeps it
transcribing when the audio LLM adapts it, and label heads (gender, speed, emotion...)
teach it what a transcript alone teaches it to ignore, the voice::

    heads = LabelHeads(encoder.output_dim, [LabelHeadConfig("gender", ["male", "female"])])
    logits = heads(pool_utterances(enc_out, features, feature_lens))  # {"gender": [B, 2]}
    loss, counts = heads.loss(logits, {"gender": ["male", None]})
    heads.predict(logits)  # {"gender": ["male", "female"]}
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from auden.types import EncoderOutput

BLANK_ID = 0


@dataclass
class LabelHeadConfig:
    """One utterance-level label: read from ``supervision.custom[field]``, one of ``classes``.

    Cuts without the field add no loss, unless ``none_class`` names a class for them:
    then the head also learns that the field is absent (an `event` head says "none" for
    speech, a `gender` head for a beep), and the LLM reads nothing for that class.
    """

    field: str = ""
    classes: list[str] = dataclasses.field(default_factory=list)
    weight: float = 0.1  # times the mean cross-entropy, added to the model's loss
    none_class: str = ""  # a class for cuts without the field ("" = they add no loss)
    hidden: int = 0  # 0: a linear head; N: BatchNorm -> N ReLU units -> dropout -> classes
    # Also read the mean and spread of the input features (spectral level and shape, as
    # x-vector heads do): a CTC-trained encoder keeps little of the voice's pitch.
    feature_stats: bool = False
    # Read the pooled encoder frames (false: the feature statistics alone, a head that
    # stays right while the audio LLM adapts the encoder under it).
    encoder_frames: bool = True

    @classmethod
    def from_any(cls, c: LabelHeadConfig | Mapping[str, Any]) -> LabelHeadConfig:
        """From a config node or dict (Hydra gives ListConfig classes: made plain lists)."""
        fields = dataclasses.asdict(c) if isinstance(c, LabelHeadConfig) else dict(c)
        return cls(**{k: (list(v) if k == "classes" else v) for k, v in fields.items()})

    @property
    def all_classes(self) -> list[str]:
        return [*self.classes, self.none_class] if self.none_class else list(self.classes)


@dataclass
class PooledUtterance:
    """What label heads read: one vector per clip."""

    frames: torch.Tensor  # [B, D] mean of the valid encoder frames
    features: torch.Tensor  # [B, 2F] mean and standard deviation of the valid input features


def pool_utterances(
    out: EncoderOutput, features: torch.Tensor, feature_lens: torch.Tensor
) -> PooledUtterance:
    """Mean encoder frame and input-feature statistics of each clip, padding excluded."""
    valid = (~out.padding_mask()).to(out.frames.dtype).unsqueeze(-1)
    frames = (out.frames * valid).sum(1) / valid.sum(1).clamp(min=1.0)
    x = features.to(out.frames.device).float()
    steps = torch.arange(x.shape[1], device=x.device)[None, :]
    mask = (steps < feature_lens.to(x.device)[:, None]).unsqueeze(-1).float()
    count = mask.sum(1).clamp(min=1.0)
    mean = (x * mask).sum(1) / count
    std = ((((x - mean[:, None]) ** 2) * mask).sum(1) / count).clamp(min=1e-8).sqrt()
    return PooledUtterance(frames, torch.cat([mean, std], 1).to(out.frames.dtype))


class _BatchStandardise(nn.BatchNorm1d):
    """BatchNorm that falls back to its running statistics on a one-clip training batch."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and x.shape[0] < 2:
            return nn.functional.batch_norm(
                x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps
            )
        return super().forward(x)


def _head(dim: int, config: LabelHeadConfig) -> nn.Module:
    classes = len(config.all_classes)
    if not config.hidden:
        return nn.Linear(dim, classes)
    return nn.Sequential(
        _BatchStandardise(dim),
        nn.Linear(dim, config.hidden),
        nn.ReLU(),
        nn.Dropout(0.3),
        nn.Linear(config.hidden, classes),
    )


class LabelHeads(nn.Module):
    """One classifier per label over the pooled encoder frames (and feature statistics)."""

    def __init__(self, dim: int, configs: Sequence[LabelHeadConfig], feature_dim: int = 0) -> None:
        super().__init__()
        self.configs = {c.field: c for c in configs}
        for c in configs:
            if not c.field or len(c.all_classes) < 2:
                raise ValueError(
                    f"model.labels entry {c}: needs a field name and at least two classes"
                )
            if c.none_class in c.classes:
                raise ValueError(
                    f"model.labels entry '{c.field}': none_class '{c.none_class}' is also "
                    "one of its classes"
                )
            if not c.encoder_frames and not c.feature_stats:
                raise ValueError(
                    f"model.labels entry '{c.field}': encoder_frames=false needs "
                    "feature_stats=true (the head would read nothing)"
                )
            if c.feature_stats and not feature_dim:
                raise ValueError(
                    f"model.labels entry '{c.field}': feature_stats needs the encoder's "
                    "feature size, which this model does not give"
                )
        if len(self.configs) != len(configs):
            raise ValueError(f"model.labels names a field twice: {[c.field for c in configs]}")
        self.heads = nn.ModuleDict(
            {
                c.field: _head(
                    (dim if c.encoder_frames else 0) + (2 * feature_dim if c.feature_stats else 0),
                    c,
                )
                for c in configs
            }
        )

    @property
    def fields(self) -> list[str]:
        return list(self.configs)

    def forward(self, pooled: PooledUtterance) -> dict[str, torch.Tensor]:
        """Each head's logits ``[B, num_classes]`` (none class last), in config order: what
        :meth:`loss`, :meth:`probabilities` and :meth:`predict` read."""
        out = {}
        for name, head in self.heads.items():
            cfg = self.configs[name]
            parts = [pooled.frames] if cfg.encoder_frames else []
            parts += [pooled.features] if cfg.feature_stats else []
            out[name] = head(torch.cat(parts, 1))
        return out

    def loss(
        self, logits: dict[str, torch.Tensor], labels: dict[str, list[str | None]]
    ) -> tuple[torch.Tensor, dict[str, tuple[int, int]]]:
        """The weighted sum of mean cross-entropies, and (correct, counted) per field."""
        first = next(iter(logits.values()))
        total = first.new_zeros(())
        counts = {}
        batch = first.shape[0]
        for name in self.heads:
            cfg = self.configs[name]
            classes = cfg.all_classes
            values = labels.get(name) or [None] * batch
            if cfg.none_class:
                values = [cfg.none_class if v is None else v for v in values]
            target = torch.tensor(
                [classes.index(v) if v in classes else -100 for v in values],
                device=first.device,
            )
            counted = int((target >= 0).sum())
            if counted:
                total = total + cfg.weight * F.cross_entropy(
                    logits[name], target, ignore_index=-100
                )
            correct = int(((logits[name].argmax(-1) == target) & (target >= 0)).sum())
            counts[name] = (correct, counted)
        return total, counts

    def probabilities(self, logits: dict[str, torch.Tensor]) -> list[torch.Tensor]:
        """Each head's class probabilities ``[B, num_classes]`` (none class last), in config order."""
        return [logits[name].softmax(-1) for name in self.heads]

    @torch.no_grad()
    def predict(self, logits: dict[str, torch.Tensor]) -> dict[str, list[str | None]]:
        """Each head's class per clip; ``None`` where it says the field is absent."""
        out = {}
        for name in self.heads:
            cfg = self.configs[name]
            classes = cfg.all_classes
            out[name] = [
                None if cfg.none_class and classes[i] == cfg.none_class else classes[i]
                for i in logits[name].argmax(-1).tolist()
            ]
        return out


def ctc_labels(tokenizer, texts: list[str]) -> list[list[int]]:
    """CTC label ids of ``texts``: the tokenizer's ids shifted by one, past the blank."""
    ids = tokenizer(texts, add_special_tokens=False)["input_ids"]
    return [[i + 1 for i in row] for row in ids]


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

"""The batch every model in auden consumes: features, lengths, chat messages and the cuts."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch
from lhotse.cut import Cut


@dataclass
class AudioBatch:
    """One mini-batch, produced by :class:`auden.data.dataset.AudioLlmDataset`.

    ``messages[i]`` is sample i's conversation in the transformers chat format. For
    training it ends with the assistant turn holding the target; for decoding it stops
    before it, and ``targets[i]`` holds the reference text used for scoring.
    """

    features: torch.Tensor  # [B, T, F] float, right-padded
    feature_lens: torch.Tensor  # [B] int64, valid frames of each row
    messages: list[list[dict]]
    targets: list[str]
    tasks: list[str]
    prompts: list[str]
    cuts: list[Cut] = field(default_factory=list)
    # What auxiliary losses learn, whatever task a row was drawn for: the transcript of
    # each clip ("" where it has none) and its categorical labels, one list per
    # ``supervision.custom`` string field (None where a clip lacks the field).
    texts: list[str] = field(default_factory=list)
    labels: dict[str, list[str | None]] = field(default_factory=dict)
    # Cuts of this batch dropped because their audio/features could not be read
    # (``data.bad_cut=skip``); the trainer counts and logs them.
    skipped_cut_ids: list[str] = field(default_factory=list)

    @property
    def cut_ids(self) -> list[str]:
        return [c.id for c in self.cuts]

    def __len__(self) -> int:
        return self.features.shape[0]

    def to(self, device: torch.device | str) -> AudioBatch:
        return replace(
            self,
            features=self.features.to(device),
            feature_lens=self.feature_lens.to(device),
        )

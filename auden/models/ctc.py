"""Encoder pretraining with CTC: a Zipformer and a linear head over a tokenizer's tokens.

A from-scratch audio LLM does not find the audio in a few minutes of CPU training; an
encoder pretrained with CTC on the same corpus does. The CTC labels are the recipe LLM's
own tokens (any transformers tokenizer folder); index 0 is the blank and token ``i`` is
output ``i + 1``. The exported folder loads back here and its encoder alone loads with
``ZipformerEncoder.from_pretrained(folder)`` (``model.audio_encoder.pretrained_model=...``)::

    model = CtcModel.from_config(CtcModelConfig(tokenizer="exp/tiny_llm"))
    out = model(batch); out.loss.backward()
    model.decode(batch)  # ["hello world", ...]
    model.save_pretrained("exp/ctc/export")
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from auden.audio.features import FeatureSpec
from auden.models.encoders.zipformer import ZipformerEncoder, resolve_zipformer_config
from auden.models.folder import read_model_folder, write_model_folder
from auden.models.heads import (
    LabelHeadConfig,
    LabelHeads,
    ctc_greedy,
    ctc_labels,
    ctc_loss,
    pool_utterances,
)
from auden.types import AudioBatch, EncoderOutput, ModelOutput

logger = logging.getLogger(__name__)


@dataclass
class CtcEncoderConfig:
    """``config``: a Zipformer preset name ("tiny", "small", "medium", "large"), a path to
    a config.json, or (in an exported folder) the full config dict. ``pretrained_model``,
    when set, is a zipformer or zipformer_ctc folder whose weights are loaded instead."""

    model_type: str = "zipformer"
    config: Any = "tiny"
    pretrained_model: str = ""


@dataclass
class CtcModelConfig:
    model_type: str = "zipformer_ctc"
    encoder: CtcEncoderConfig = field(default_factory=CtcEncoderConfig)
    # A transformers tokenizer folder (e.g. the recipe's LLM); empty in an exported folder,
    # which carries its own tokenizer files.
    tokenizer: str = ""
    # Utterance-level labels learnt beside CTC (pooled heads), so that the encoder keeps
    # what a transcript does not say: the speaker's gender, the speed, the sound...
    labels: list[LabelHeadConfig] = field(default_factory=list)


def _build_encoder(cfg: CtcEncoderConfig) -> ZipformerEncoder:
    if cfg.model_type != "zipformer":
        raise ValueError(
            f"model.encoder.model_type '{cfg.model_type}' is not supported for CTC; use 'zipformer'"
        )
    if cfg.pretrained_model:
        return ZipformerEncoder.from_pretrained(cfg.pretrained_model)
    return ZipformerEncoder(resolve_zipformer_config(cfg.config))


def _load_tokenizer(path: str | Path) -> PreTrainedTokenizerBase:
    if not path:
        raise ValueError("model.tokenizer is empty: give a transformers tokenizer folder")
    if not Path(path).is_dir():
        raise FileNotFoundError(f"model.tokenizer folder '{path}' does not exist")
    return AutoTokenizer.from_pretrained(str(path))


class CtcModel(nn.Module):
    """Zipformer encoder + linear CTC head over ``len(tokenizer) + 1`` classes (0 = blank)."""

    model_type = "zipformer_ctc"

    def __init__(
        self,
        config: CtcModelConfig,
        tokenizer: PreTrainedTokenizerBase | None = None,
        encoder: ZipformerEncoder | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        self.tokenizer = tokenizer if tokenizer is not None else _load_tokenizer(config.tokenizer)
        self.encoder = encoder if encoder is not None else _build_encoder(config.encoder)
        self.ctc_head = nn.Linear(self.encoder.output_dim, len(self.tokenizer) + 1)
        labels = [LabelHeadConfig.from_any(c) for c in config.labels]
        self.label_heads = (
            LabelHeads(self.encoder.output_dim, labels, self.encoder.features.num_mel_bins)
            if labels
            else None
        )

    @classmethod
    def from_config(cls, config: CtcModelConfig | dict) -> CtcModel:
        if not isinstance(config, CtcModelConfig):
            from auden.auto.auto_config import AutoConfig

            config = AutoConfig.from_dict(config)
        return cls(config)

    @property
    def device(self) -> torch.device:
        return self.ctc_head.weight.device

    @property
    def features(self) -> FeatureSpec:
        """The features the encoder reads."""
        return self.encoder.features

    def encode(self, batch: AudioBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """CTC log-probabilities ``[B, T', V+1]`` and their lengths."""
        log_probs, out = self._encode(batch)
        return log_probs, out.lens

    def _encode(self, batch: AudioBatch) -> tuple[torch.Tensor, EncoderOutput]:
        # SpecAugment is the data pipeline's job (data.augment.spec_augment), not the model's.
        out = self.encoder(batch.features.to(self.device), batch.feature_lens.to(self.device))
        return self.ctc_head(out.frames).log_softmax(dim=-1), out

    def tokenize(self, texts: list[str]) -> list[list[int]]:
        """CTC label ids (tokenizer ids shifted by one past the blank)."""
        return ctc_labels(self.tokenizer, texts)

    def target_fits(self, num_frames: int, target: str) -> bool:
        """Whether CTC can align ``target`` to a clip of ``num_frames`` 100 Hz frames.

        CTC needs one output frame per label plus one blank between equal neighbours.
        The data filter asks this to drop clips too short for their transcript.
        """
        labels = self.tokenize([target])[0]
        repeats = sum(a == b for a, b in zip(labels, labels[1:]))
        frames = int(self.encoder.output_lengths(torch.tensor([num_frames]))[0])
        return len(labels) + repeats <= frames

    @staticmethod
    def transcripts(batch: AudioBatch) -> list[str]:
        """What CTC learns: the transcript of each clip, whatever task the row was drawn for."""
        return batch_transcripts(batch)

    def forward(self, batch: AudioBatch) -> ModelOutput:
        log_probs, out = self._encode(batch)
        lens = out.lens
        labels = self.tokenize(self.transcripts(batch))
        for i, row in enumerate(labels):
            if len(row) > int(lens[i]):
                name = batch.cut_ids[i] if batch.cuts else f"row {i}"
                logger.warning(
                    "cut '%s': %d CTC labels but only %d encoder frames; it adds no loss",
                    name,
                    len(row),
                    int(lens[i]),
                )
        loss_sum, num_labels = ctc_loss(log_probs, lens, labels)
        num_targets = max(num_labels, 1)
        loss = loss_sum / num_targets
        metrics = {"ctc_loss": float(loss_sum.detach())}
        if self.label_heads is not None:
            logits = self.label_heads(pool_utterances(out, batch.features, batch.feature_lens))
            label_loss, counts = self.label_heads.loss(logits, batch.labels)
            loss = loss + label_loss
            metrics.update(label_metrics(counts))
        return ModelOutput(loss=loss, num_targets=num_targets, metrics=metrics)

    @property
    def label_fields(self) -> list[str]:
        """The labels the label heads predict (none without heads)."""
        return list(self.label_heads.fields) if self.label_heads is not None else []

    def label_none_class(self, field: str) -> str:
        """The class a None prediction of ``field`` stands for ("" if its head has none)."""
        return self.label_heads.configs[field].none_class if self.label_heads is not None else ""

    @torch.no_grad()
    def classify(self, batch: AudioBatch) -> dict[str, list[str]]:
        """The label heads' predictions for every clip (empty without label heads)."""
        if self.label_heads is None:
            return {}
        _, out = self._encode(batch)
        pooled = pool_utterances(out, batch.features, batch.feature_lens)
        return self.label_heads.predict(self.label_heads(pooled))

    @torch.no_grad()
    def decode(
        self,
        batch: AudioBatch,
        *,
        decoding_method: str = "greedy_search",
        beam_size: int = 1,
        max_new_tokens: int = 128,
    ) -> list[str]:
        """Greedy CTC: best class per frame, repeats merged, blanks dropped."""
        if decoding_method not in ("greedy_search", "ctc_greedy_search"):
            raise ValueError(
                f"decoding_method '{decoding_method}' is not supported by zipformer_ctc; "
                "use 'greedy_search'"
            )
        log_probs, lens = self.encode(batch)
        return [
            self.tokenizer.decode(ids, skip_special_tokens=True).strip()
            for ids in ctc_greedy(log_probs, lens)
        ]

    def export_config(self) -> dict[str, Any]:
        """config.json of an exported folder: self-contained (full encoder config inline)."""
        config = asdict(self.config)
        config["encoder"] = {
            "model_type": "zipformer",
            "config": self.encoder.config.to_dict(),
            "pretrained_model": "",
        }
        config["tokenizer"] = ""
        return config

    def save_pretrained(self, folder: str | Path) -> Path:
        return write_model_folder(
            folder, self.export_config(), self.state_dict(), extra=self.tokenizer.save_pretrained
        )

    @classmethod
    def from_pretrained(cls, folder: str | Path) -> CtcModel:
        from auden.auto.auto_config import AutoConfig

        raw, state = read_model_folder(folder)
        if raw.get("model_type") != "zipformer_ctc":
            raise ValueError(
                f"'{folder}' holds model_type '{raw.get('model_type')}', not zipformer_ctc"
            )
        config = AutoConfig.from_dict(json.loads(json.dumps(raw)))
        encoder = ZipformerEncoder(resolve_zipformer_config(config.encoder.config))
        model = cls(config, tokenizer=_load_tokenizer(folder), encoder=encoder)
        model.load_state_dict(state)
        return model


def batch_transcripts(batch: AudioBatch) -> list[str]:
    """The transcript of every row: ``batch.texts``, or the targets of a transcribe batch."""
    if len(batch.texts) == len(batch):
        return list(batch.texts)
    if all(task == "transcribe" for task in batch.tasks):
        return list(batch.targets)
    raise ValueError(
        "the batch carries no transcripts (AudioBatch.texts) for its non-transcribe rows; "
        "CTC needs them"
    )


def label_metrics(counts: dict[str, tuple[int, int]]) -> dict[str, float]:
    """Per-label sums the trainer logs: ``<field>_correct`` and ``<field>_count``."""
    metrics = {}
    for name, (correct, counted) in counts.items():
        metrics[f"{name}_correct"] = float(correct)
        metrics[f"{name}_count"] = float(counted)
    return metrics

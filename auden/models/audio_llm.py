"""AudioLlm: audio encoder -> projector -> causal LLM, the audio spliced in at the audio token.

::

    model = AudioLlm.from_config(AudioLlmConfig(
        audio_encoder=AudioEncoderConfig(model_type="whisper", config="tiny-test"),
        llm=LlmConfig(pretrained_model="exp/tiny_llm")))
    out = model(batch)                                   # ModelOutput: loss, counts
    texts = model.generate((features, lens), messages, max_new_tokens=50)
    model.save_pretrained("exp/export")                  # self-contained folder
    model = AudioLlm.from_pretrained("exp/export")       # or auden / transformers AutoModel
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import AutoConfig as HfAutoConfig
from transformers import AutoModelForCausalLM, AutoTokenizer
from transformers.initialization import no_init_weights

from auden.audio.features import build_feature_extractor, extract_padded
from auden.auto.auto_config import AutoConfig, config_to_dict
from auden.data.batch import AudioBatch
from auden.models.atomic_folder import save_folder_atomically
from auden.models.chat_inputs import IGNORE_INDEX, ChatTokenizer
from auden.models.encoders.base import AudioEncoder, encoder_class
from auden.models.lora import LoraConfig, add_lora, base_module, merged_copy
from auden.models.outputs import ModelOutput
from auden.models.projector import Projector, ProjectorConfig
from auden.models.weights_io import load_weights, save_weights

logger = logging.getLogger(__name__)

# Which features each encoder reads, for generate() from raw waveforms.
FEATURE_KIND = {"whisper": "whisper_fbank", "zipformer": "fbank"}
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass
class AudioEncoderConfig:
    """``config``: a preset name or config.json path, used when ``pretrained_model`` is empty.

    ``pad_to_30s`` (Whisper only) pads every clip to 30 s as pretrained Whisper expects.
    """

    model_type: str = "zipformer"
    pretrained_model: str = ""
    config: Any = ""
    frozen: bool = False
    pad_to_30s: bool = False
    lora: LoraConfig = field(default_factory=lambda: LoraConfig(target_modules=[]))


@dataclass
class LlmConfig:
    """``pretrained_model``: a transformers causal-LM folder with its tokenizer.

    ``frozen``: no gradients and eval mode. ``lora.enabled`` trains LoRA adapters only
    (the base weights are frozen whatever ``frozen`` says). ``config`` (the LLM's resolved
    config dict) is written by ``save_pretrained``; users leave it empty.
    """

    pretrained_model: str = ""
    config: Any = None
    frozen: bool = True
    dtype: str = "float32"
    attn_implementation: str = "sdpa"
    lora: LoraConfig = field(default_factory=LoraConfig)


@dataclass
class AudioLlmConfig:
    """The whole truth about an AudioLlm; Hydra's ``model=audio_llm`` node."""

    model_type: str = "audio_llm"
    audio_encoder: AudioEncoderConfig = field(default_factory=AudioEncoderConfig)
    projector: ProjectorConfig = field(default_factory=ProjectorConfig)
    llm: LlmConfig = field(default_factory=LlmConfig)
    audio_token: str = "<|AUDIO|>"


class AudioLlm(nn.Module):
    """An audio LLM. Build it with :meth:`from_config` or :meth:`from_pretrained`."""

    model_type = "audio_llm"

    def __init__(
        self, config: AudioLlmConfig, audio_encoder: AudioEncoder, llm: nn.Module, tokenizer
    ) -> None:
        super().__init__()
        self.config = config
        self.tokenizer = tokenizer
        _ensure_audio_token(llm, tokenizer, config.audio_token)
        self.chat = ChatTokenizer(tokenizer, config.audio_token)
        llm_dim = llm.get_input_embeddings().embedding_dim
        self.audio_encoder = audio_encoder
        self.projector = Projector(config.projector, audio_encoder.output_dim, llm_dim)
        self.llm = llm

        enc, llm_cfg = config.audio_encoder, config.llm
        if enc.lora.enabled:
            self.audio_encoder = add_lora(audio_encoder, enc.lora, "model.audio_encoder")
        elif enc.frozen:
            self.audio_encoder.requires_grad_(False)
        if llm_cfg.lora.enabled:
            self.llm = add_lora(llm, llm_cfg.lora, "model.llm")
        elif llm_cfg.frozen:
            self.llm.requires_grad_(False)
        self.train(self.training)

    # ------------------------------------------------------------------ building and loading
    @classmethod
    def from_config(cls, config: AudioLlmConfig | Any) -> AudioLlm:
        """Build the model, loading the pretrained encoder and LLM named in ``config``."""
        config = AutoConfig.from_dict(config)
        enc_cfg, llm_cfg = config.audio_encoder, config.llm
        enc_cls = encoder_class(enc_cfg.model_type)
        extra = {}
        if enc_cfg.pad_to_30s:
            if enc_cfg.model_type != "whisper":
                raise ValueError("model.audio_encoder.pad_to_30s applies to Whisper encoders only")
            extra["pad_to_30s"] = True
        if enc_cfg.pretrained_model:
            encoder = enc_cls.from_pretrained(enc_cfg.pretrained_model, **extra)
        elif enc_cfg.config:
            encoder = enc_cls(enc_cfg.config, **extra)
            if enc_cfg.frozen and not enc_cfg.lora.enabled:
                logger.warning(
                    "model.audio_encoder is frozen but has no pretrained_model: its random "
                    "weights will never train and are not stored in training checkpoints"
                )
        else:
            raise ValueError(
                "set model.audio_encoder.pretrained_model (a folder) or model.audio_encoder.config "
                "(a preset name or config.json)"
            )
        if not llm_cfg.pretrained_model:
            raise ValueError("model.llm.pretrained_model (a causal-LM folder) is not set")
        llm = AutoModelForCausalLM.from_pretrained(
            llm_cfg.pretrained_model,
            dtype=_dtype(llm_cfg.dtype),
            attn_implementation=llm_cfg.attn_implementation,
        )
        tokenizer = AutoTokenizer.from_pretrained(llm_cfg.pretrained_model)
        return cls(config, encoder, llm, tokenizer)

    @classmethod
    def from_pretrained(cls, folder: str | Path, *args: Any, **kwargs: Any) -> AudioLlm:
        """Load a folder written by :meth:`save_pretrained`; needs nothing else on disk.

        Extra arguments (passed by ``transformers.AutoModel.from_pretrained``) are ignored.
        """
        folder = Path(folder)
        config = AutoConfig.from_pretrained(folder)
        if config.model_type != cls.model_type:
            raise ValueError(f"'{folder}' holds model_type '{config.model_type}', not 'audio_llm'")
        enc_cfg, llm_cfg = config.audio_encoder, config.llm
        if not isinstance(enc_cfg.config, dict) or not isinstance(llm_cfg.config, dict):
            raise ValueError(f"'{folder}/config.json' lacks the resolved encoder or LLM config")
        encoder = encoder_class(enc_cfg.model_type)(enc_cfg.config)
        hf_config = dict(llm_cfg.config)
        hf_config = HfAutoConfig.for_model(hf_config.pop("model_type"), **hf_config)
        with no_init_weights():  # every weight is loaded below; random init is wasted time
            llm = AutoModelForCausalLM.from_config(
                hf_config,
                dtype=_dtype(llm_cfg.dtype),
                attn_implementation=llm_cfg.attn_implementation,
            )
        llm.tie_weights()  # no_init_weights skips the tying that init would do
        tokenizer = AutoTokenizer.from_pretrained(folder)
        model = cls(config, encoder, llm, tokenizer)
        load_weights(model, folder / "model.safetensors")
        return model.eval()

    def save_pretrained(self, folder: str | Path) -> Path:
        """Write config.json (resolved), model.safetensors (LoRA merged) and the tokenizer."""
        encoder = merged_copy(self.audio_encoder)
        llm = merged_copy(self.llm)
        config = self.resolved_config(encoder, llm)
        state = {}
        for prefix, module in (
            ("audio_encoder", encoder),
            ("projector", self.projector),
            ("llm", llm),
        ):
            state.update({f"{prefix}.{k}": v for k, v in module.state_dict().items()})

        def write(tmp: Path) -> None:
            tmp.mkdir(parents=True)
            (tmp / "config.json").write_text(json.dumps(config_to_dict(config), indent=2))
            save_weights(state, tmp / "model.safetensors")
            self.tokenizer.save_pretrained(tmp)

        folder = save_folder_atomically(folder, write)
        logger.info("saved audio_llm to %s", folder)
        return folder

    def resolved_config(self, encoder: nn.Module | None = None, llm: nn.Module | None = None):
        """The config with encoder/LLM configs written out and LoRA merged (as exported)."""
        encoder = base_module(encoder or self.audio_encoder)
        llm = base_module(llm or self.llm)
        enc_dict = {"model_type": encoder.model_type, **encoder.config.to_dict()}
        enc_dict["model_type"] = encoder.model_type
        c = self.config
        return replace(
            c,
            audio_encoder=replace(
                c.audio_encoder,
                pretrained_model="",
                config=enc_dict,
                lora=replace(c.audio_encoder.lora, enabled=False),
            ),
            llm=replace(
                c.llm,
                pretrained_model="",
                config=llm.config.to_dict(),
                lora=replace(c.llm.lora, enabled=False),
            ),
        )

    # ------------------------------------------------------------------ training helpers
    def train(self, mode: bool = True) -> AudioLlm:
        """Frozen parts with nothing to train stay in eval mode (no dropout, no layer skipping)."""
        super().train(mode)
        for module in (self.audio_encoder, self.llm):
            if not any(p.requires_grad for p in module.parameters()):
                module.eval()
        return self

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """Only the parameters that train (what a training checkpoint stores)."""
        return {n: p.detach() for n, p in self.named_parameters() if p.requires_grad}

    # ------------------------------------------------------------------ the model
    def encode_audio(
        self, features: torch.Tensor, feature_lens: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Features -> projected audio frames ``[B, N, llm_dim]`` and their lengths ``[B]``."""
        enc_trains = any(p.requires_grad for p in self.audio_encoder.parameters())
        with torch.set_grad_enabled(enc_trains and torch.is_grad_enabled()):
            enc_out = self.audio_encoder(features, feature_lens)
        frames, lens = self.projector(enc_out.frames, enc_out.lens)
        return frames.to(self.llm.get_input_embeddings().weight.dtype), lens

    def _embed(self, chat, frames: torch.Tensor, lens: torch.Tensor) -> torch.Tensor:
        device = frames.device
        input_ids = chat.input_ids.to(device)
        audio_mask = (input_ids == self.chat.audio_token_id) & chat.attention_mask.bool().to(device)
        embeds = self.llm.get_input_embeddings()(input_ids)
        valid = torch.arange(frames.shape[1], device=device)[None, :] < lens[:, None]
        audio = frames[valid]
        if audio.shape[0] != int(audio_mask.sum()):  # guarded by ChatTokenizer; kept as a check
            raise RuntimeError(f"{audio.shape[0]} audio frames for {int(audio_mask.sum())} slots")
        return embeds.masked_scatter(audio_mask[:, :, None], audio.to(embeds.dtype))

    def compute_logits(
        self, batch: AudioBatch, *, only_predicting_targets: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher-forced logits and the tokens they predict (IGNORE_INDEX where unlabelled).

        By default logits ``[B, L, V]`` for every position and labels shifted by one (the
        next token). With ``only_predicting_targets`` only the positions that predict a
        target token in some row are kept, which saves most of the ``L x vocab`` memory.
        """
        device = self.projector.mlp[0].weight.device
        frames, lens = self.encode_audio(batch.features.to(device), batch.feature_lens.to(device))
        names = _clip_names(batch.cuts, len(batch))
        chat = self.chat.encode(batch.messages, lens.tolist(), names, for_generation=False)
        embeds = self._embed(chat, frames, lens)
        labels = chat.labels.to(device)
        next_tokens = torch.cat([labels[:, 1:], torch.full_like(labels[:, :1], IGNORE_INDEX)], 1)
        kwargs = {}
        if only_predicting_targets:
            keep = (next_tokens != IGNORE_INDEX).any(0).nonzero().squeeze(1)
            kwargs["logits_to_keep"] = keep
            next_tokens = next_tokens[:, keep]
        logits = self.llm(
            inputs_embeds=embeds, attention_mask=chat.attention_mask.to(device), **kwargs
        ).logits
        return logits, next_tokens

    def forward(self, batch: AudioBatch) -> ModelOutput:
        """Teacher-forced loss over the assistant replies (mean per target token)."""
        logits, labels = self.compute_logits(batch, only_predicting_targets=True)
        logits = logits.float()
        target = labels != IGNORE_INDEX
        num_targets = int(target.sum())
        loss = nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]),
            labels.reshape(-1),
            ignore_index=IGNORE_INDEX,
            reduction="sum",
        ) / max(num_targets, 1)
        num_correct = int(((logits.argmax(-1) == labels) & target).sum())
        return ModelOutput(loss=loss, num_targets=num_targets, num_correct=num_correct)

    @torch.no_grad()
    def generate(
        self,
        audio: tuple[torch.Tensor, torch.Tensor] | Sequence,
        messages: list[list[dict]],
        *,
        sampling_rate: int = 16000,
        clip_names: list[str] | None = None,
        **generation_kwargs: Any,
    ) -> list[str]:
        """Reply to each conversation about its clip; returns the decoded strings.

        ``audio`` is ``(features [B, T, F], lengths [B])`` or a list of mono waveforms
        (features are then computed with the encoder's extractor). Any transformers
        generation argument may be given (``num_beams``, ``do_sample``, ``max_new_tokens``...);
        the default is greedy search with at most 128 new tokens.
        """
        features, feature_lens = self._features(audio, sampling_rate)
        device = self.projector.mlp[0].weight.device
        frames, lens = self.encode_audio(features.to(device), feature_lens.to(device))
        names = clip_names or [f"clip {i}" for i in range(len(messages))]
        chat = self.chat.encode(messages, lens.tolist(), names, for_generation=True)
        embeds = self._embed(chat, frames, lens)
        kwargs = {
            "max_new_tokens": 128,
            "do_sample": False,
            "num_beams": 1,
            "eos_token_id": self._stop_token_ids(),
            "pad_token_id": self.chat.pad_token_id,
        }
        kwargs.update(generation_kwargs)
        out = self.llm.generate(
            inputs_embeds=embeds, attention_mask=chat.attention_mask.to(device), **kwargs
        )
        texts = self.tokenizer.batch_decode(out, skip_special_tokens=True)
        return [t.strip() for t in texts]

    def decode(
        self,
        batch: AudioBatch,
        *,
        decoding_method: str = "greedy_search",
        beam_size: int = 1,
        max_new_tokens: int = 128,
    ) -> list[str]:
        """Hypotheses for an evaluation batch (a trailing assistant turn is dropped)."""
        if decoding_method == "greedy_search":
            kwargs = {"num_beams": 1, "do_sample": False}
        elif decoding_method == "beam_search":
            kwargs = {"num_beams": beam_size, "do_sample": False}
        else:
            raise ValueError(
                f"unknown decoding_method '{decoding_method}'; use 'greedy_search' or 'beam_search'"
            )
        messages = [m[:-1] if m and m[-1]["role"] == "assistant" else m for m in batch.messages]
        return self.generate(
            (batch.features, batch.feature_lens),
            messages,
            clip_names=_clip_names(batch.cuts, len(batch)),
            max_new_tokens=max_new_tokens,
            **kwargs,
        )

    def _features(self, audio, sampling_rate: int) -> tuple[torch.Tensor, torch.Tensor]:
        if isinstance(audio, tuple) and len(audio) == 2 and torch.is_tensor(audio[0]):
            if audio[0].dim() == 3:
                return audio
        encoder = base_module(self.audio_encoder)
        kind = FEATURE_KIND.get(encoder.model_type)
        if kind is None:
            raise ValueError(f"no feature extractor known for encoder '{encoder.model_type}'")
        extractor = build_feature_extractor(kind, num_mel_bins=encoder.config.num_mel_bins)
        return extract_padded(extractor, list(audio), sampling_rate)

    def _stop_token_ids(self) -> list[int]:
        ids = {self.tokenizer.eos_token_id}
        configured = base_module(self.llm).generation_config.eos_token_id
        if configured is not None:
            ids |= set(configured) if isinstance(configured, list) else {configured}
        return sorted(i for i in ids if i is not None)


def _dtype(name: str) -> torch.dtype:
    try:
        return DTYPES[name]
    except KeyError:
        raise ValueError(f"model.llm.dtype '{name}' is not one of {sorted(DTYPES)}") from None


def _clip_names(cuts: list, n: int) -> list[str]:
    if len(cuts) == n:
        return [f"cut '{c.id}'" for c in cuts]
    return [f"clip {i}" for i in range(n)]


def _ensure_audio_token(llm: nn.Module, tokenizer, audio_token: str) -> None:
    """Add the audio token to the tokenizer, and grow the embeddings, only when absent."""
    if audio_token not in tokenizer.get_vocab():
        tokenizer.add_tokens([audio_token], special_tokens=True)
        logger.info("added audio token %s to the tokenizer", audio_token)
    token_id = tokenizer.convert_tokens_to_ids(audio_token)
    if token_id >= llm.get_input_embeddings().num_embeddings:
        llm.resize_token_embeddings(len(tokenizer))
        logger.info("resized the LLM's embeddings to %d", len(tokenizer))

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
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import AutoConfig as HfAutoConfig
from transformers import AutoModelForCausalLM, AutoTokenizer
from transformers.initialization import no_init_weights

from auden.audio.features import FeatureSpec, build_feature_extractor, extract_padded
from auden.auto.auto_config import AutoConfig, config_to_dict
from auden.models.chat_inputs import (
    IGNORE_INDEX,
    ChatTokenizer,
    audio_as_text,
    ensure_audio_token,
    reply_loss,
)
from auden.models.ctc import batch_transcripts
from auden.models.encoders.base import AudioEncoder, encoder_class
from auden.models.folder import write_model_folder
from auden.models.heads import (
    LabelHeadConfig,
    LabelHeads,
    ctc_greedy,
    ctc_labels,
    ctc_loss,
    pool_utterances,
)
from auden.models.lora import LoraConfig, add_lora, base_module, is_lora, merged_copy
from auden.models.projector import CtcCompressor, Projector, ProjectorConfig
from auden.models.text_llm import words_read_for_audio
from auden.models.weights_io import load_weights
from auden.types import DTYPES, AudioBatch, EncoderOutput, ModelOutput

logger = logging.getLogger(__name__)


ENCODER_TRAINING = ("frozen", "lora", "top_layers", "full")


@dataclass
class HeardAudio:
    """One encoder pass over a batch and what its heads read from it (computed once)."""

    enc_out: EncoderOutput
    ctc_log_probs: torch.Tensor | None  # [B, T, vocab + 1]; None without a CTC head
    label_logits: dict[str, torch.Tensor]  # per label head [B, classes]; empty without heads


@dataclass
class AudioEncoderConfig:
    """``config``: a preset name or config.json path, used when ``pretrained_model`` is empty.

    ``train`` says what of the encoder learns: ``frozen`` (nothing; eval mode), ``lora``
    (adapters on its linear layers, ``lora.target_modules`` or the encoder's defaults),
    ``top_layers`` (its last ``top_layers`` layers) or ``full``. A small LLM reads only
    what the encoder already offers unless the encoder may adapt to it.
    ``pad_to_30s`` (Whisper only) pads every clip to 30 s as pretrained Whisper expects.
    """

    model_type: str = "zipformer"
    pretrained_model: str = ""
    config: Any = ""
    train: str = "full"
    top_layers: int = 0
    pad_to_30s: bool = False
    lora: LoraConfig = field(default_factory=lambda: LoraConfig(target_modules=[]))


@dataclass
class JointCtcConfig:
    """An auxiliary CTC loss on the encoder frames, over the LLM's own tokens.

    With ``weight > 0`` the loss is ``llm_loss + weight * ctc_loss``; the CTC head comes
    from a ``zipformer_ctc`` ``audio_encoder.pretrained_model`` when it has one, else it
    starts at random. It keeps an adapting encoder transcribing, and evaluate.py reports
    its greedy CTC WER beside the LLM's.
    """

    weight: float = 0.0


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
    ctc: JointCtcConfig = field(default_factory=JointCtcConfig)
    # Utterance labels (gender, speed...) learnt by pooled heads on the encoder, as in
    # zipformer_ctc pretraining (whose heads a zipformer_ctc pretrained_model brings). With
    # projector.type=ctc each head also gives the LLM one position: its class words'
    # embeddings weighted by its probabilities.
    labels: list[LabelHeadConfig] = field(default_factory=list)
    audio_token: str = "<|AUDIO|>"


class AudioLlm(nn.Module):
    """An audio LLM. Build it with :meth:`from_config` or :meth:`from_pretrained`."""

    model_type = "audio_llm"

    def __init__(
        self,
        config: AudioLlmConfig,
        audio_encoder: AudioEncoder,
        llm: nn.Module,
        tokenizer,
        ctc_head_state: dict[str, torch.Tensor] | None = None,
        label_heads_state: dict[str, torch.Tensor] | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        self.tokenizer = tokenizer
        ensure_audio_token(llm, tokenizer, config.audio_token)
        self.chat = ChatTokenizer(tokenizer, config.audio_token)
        llm_dim = llm.get_input_embeddings().embedding_dim
        self.audio_encoder = audio_encoder
        if config.projector.type == "ctc":
            if config.ctc.weight <= 0:
                raise ValueError(
                    "model.projector.type=ctc reads the joint CTC head: set model.ctc.weight > 0"
                )
            self.projector = CtcCompressor(config.projector, audio_encoder.output_dim, llm_dim)
        else:
            self.projector = Projector(config.projector, audio_encoder.output_dim, llm_dim)
        self.llm = llm

        self.ctc_head = None
        if config.ctc.weight > 0:
            self.ctc_head = nn.Linear(audio_encoder.output_dim, len(tokenizer) + 1)
            if ctc_head_state is not None:
                self._load_ctc_head(ctc_head_state)
        elif config.ctc.weight < 0:
            raise ValueError(f"model.ctc.weight must be >= 0, got {config.ctc.weight}")

        labels = [LabelHeadConfig.from_any(c) for c in config.labels]
        self.label_heads = (
            LabelHeads(audio_encoder.output_dim, labels, audio_encoder.features.num_mel_bins)
            if labels
            else None
        )
        if self.label_heads is not None:
            # Each class as the LLM's words for it: the mean embedding of its tokens as
            # text pretraining wrote them (words_read_for_audio); none for a head's
            # none_class: the LLM reads nothing there.
            ids = [
                tokenizer(words_read_for_audio([cls_name], ""), add_special_tokens=False).input_ids
                if cls_name in c.classes
                else []
                for c in labels
                for cls_name in c.all_classes
            ]
            self._label_word_ids = ids
            if label_heads_state:
                missing = self.label_heads.load_state_dict(label_heads_state, strict=False)
                logger.info("label heads start from the pretrained encoder's (%s)", missing)

        llm_cfg = config.llm
        self._frozen_encoder_layers = self._set_encoder_training(config.audio_encoder)
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
            if enc_cfg.train == "frozen":
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
        head = labels = None
        if enc_cfg.pretrained_model:
            extra_heads = _pretrained_heads(enc_cfg.pretrained_model)
            head = extra_heads.get("ctc_head") if config.ctc.weight > 0 else None
            labels = extra_heads.get("label_heads") if config.labels else None
        return cls(config, encoder, llm, tokenizer, ctc_head_state=head, label_heads_state=labels)

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
        _check_tokenizer_fits(tokenizer, hf_config.vocab_size, folder)
        model = cls(config, encoder, llm, tokenizer)
        load_weights(model, folder / "model.safetensors")
        return model.eval()

    def save_pretrained(self, folder: str | Path) -> Path:
        """Write config.json (resolved), model.safetensors (LoRA merged) and the tokenizer."""
        encoder = merged_copy(self.audio_encoder)
        llm = merged_copy(self.llm)
        config = self.resolved_config(encoder, llm)
        state = {}
        parts = [("audio_encoder", encoder), ("projector", self.projector), ("llm", llm)]
        if self.ctc_head is not None:
            parts.append(("ctc_head", self.ctc_head))
        if self.label_heads is not None:
            parts.append(("label_heads", self.label_heads))
        for prefix, module in parts:
            state.update({f"{prefix}.{k}": v for k, v in module.state_dict().items()})

        folder = write_model_folder(
            folder, config_to_dict(config), state, extra=self.tokenizer.save_pretrained
        )
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
                # LoRA is merged into the exported weights: the folder holds a plain encoder.
                train="full" if c.audio_encoder.train == "lora" else c.audio_encoder.train,
                lora=replace(c.audio_encoder.lora, enabled=False),
            ),
            llm=replace(
                c.llm,
                pretrained_model="",
                config=llm.config.to_dict(),
                lora=replace(c.llm.lora, enabled=False),
            ),
        )

    @property
    def device(self) -> torch.device:
        return next(self.projector.parameters()).device

    # ------------------------------------------------------------------ training helpers
    def train(self, mode: bool = True) -> AudioLlm:
        """Frozen parts with nothing to train stay in eval mode (no dropout, no layer skipping)."""
        super().train(mode)
        for module in (self.audio_encoder, self.llm, *self._frozen_encoder_layers):
            if not any(p.requires_grad for p in module.parameters()):
                module.eval()
        return self

    def _set_encoder_training(self, enc: AudioEncoderConfig) -> list[nn.Module]:
        """Freeze what ``audio_encoder.train`` keeps fixed; returns the frozen layers."""
        if enc.train not in ENCODER_TRAINING:
            raise ValueError(
                f"model.audio_encoder.train '{enc.train}' is not one of {list(ENCODER_TRAINING)}"
            )
        if enc.lora.enabled and enc.train != "lora":
            raise ValueError(
                "model.audio_encoder.lora.enabled is set: use model.audio_encoder.train=lora"
            )
        if enc.train == "full":
            return []
        if enc.train == "lora":
            targets = list(enc.lora.target_modules) or list(self.audio_encoder.lora_targets)
            lora = replace(enc.lora, enabled=True, target_modules=targets)
            self.audio_encoder = add_lora(self.audio_encoder, lora, "model.audio_encoder")
            return []
        self.audio_encoder.requires_grad_(False)
        if enc.train == "frozen":
            return []
        layers = self.audio_encoder.layers()
        if not 1 <= enc.top_layers <= len(layers):
            raise ValueError(
                f"model.audio_encoder.top_layers must lie in [1, {len(layers)}] (the encoder's "
                f"layers) with train=top_layers, got {enc.top_layers}"
            )
        for layer in layers[-enc.top_layers :]:
            layer.requires_grad_(True)
        return layers[: -enc.top_layers]

    def _load_ctc_head(self, state: dict[str, torch.Tensor]) -> None:
        expected = tuple(self.ctc_head.weight.shape)
        weight, bias = state["weight"], state["bias"]
        if weight.shape[1] != expected[1] or weight.shape[0] > expected[0]:
            logger.warning(
                "the pretrained CTC head has shape %s, the audio LLM needs %s (encoder dim x "
                "tokenizer size + 1): starting a new head",
                tuple(weight.shape),
                expected,
            )
            return
        with torch.no_grad():
            self.ctc_head.weight[: weight.shape[0]].copy_(weight)
            self.ctc_head.bias[: weight.shape[0]].copy_(bias)
            # Tokens added since CTC pretraining (the audio token, for an LLM that had none)
            # are never CTC targets: they start as unlikely as the least likely old token.
            self.ctc_head.weight[weight.shape[0] :].zero_()
            self.ctc_head.bias[weight.shape[0] :].fill_(float(bias.min()))
        added = expected[0] - weight.shape[0]
        logger.info(
            "joint CTC starts from the encoder's pretrained CTC head%s",
            f" ({added} token(s) added to the tokenizer since)" if added else "",
        )

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """Only the parameters that train (what a training checkpoint stores)."""
        return {n: p.detach() for n, p in self.named_parameters() if p.requires_grad}

    # ------------------------------------------------------------------ the model
    def run_encoder(self, features: torch.Tensor, feature_lens: torch.Tensor) -> EncoderOutput:
        """The encoder's frames, with gradients only when some of it trains."""
        enc_trains = any(p.requires_grad for p in self.audio_encoder.parameters())
        with torch.set_grad_enabled(enc_trains and torch.is_grad_enabled()):
            return self.audio_encoder(features, feature_lens)

    def hear(self, features: torch.Tensor, feature_lens: torch.Tensor) -> HeardAudio:
        """The encoder's frames and its heads' outputs, once per batch: the projector,
        the joint CTC loss and the label loss all read them."""
        enc_out = self.run_encoder(features, feature_lens)
        ctc_log_probs = self._ctc_log_probs(enc_out) if self.ctc_head is not None else None
        label_logits = {}
        if self.label_heads is not None:
            label_logits = self.label_heads(pool_utterances(enc_out, features, feature_lens))
        return HeardAudio(enc_out, ctc_log_probs, label_logits)

    def encode_audio(
        self,
        features: torch.Tensor,
        feature_lens: torch.Tensor,
        heard: HeardAudio | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Features -> projected audio frames ``[B, N, llm_dim]`` and their lengths ``[B]``."""
        if heard is None:
            heard = self.hear(features, feature_lens)
        enc_out = heard.enc_out
        if isinstance(self.projector, CtcCompressor):
            embeddings = self.llm.get_input_embeddings().weight
            frames, lens = self.projector(
                enc_out.frames,
                enc_out.lens,
                heard.ctc_log_probs,
                embeddings,
                label_words=self._label_words(heard.label_logits, embeddings),
            )
        else:
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
        self,
        batch: AudioBatch,
        *,
        only_predicting_targets: bool = False,
        heard: HeardAudio | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher-forced logits and the tokens they predict (IGNORE_INDEX where unlabelled).

        By default logits ``[B, L, V]`` for every position and labels shifted by one (the
        next token). With ``only_predicting_targets`` only the positions that predict a
        target token in some row are kept, which saves most of the ``L x vocab`` memory.
        """
        device = self.device
        frames, lens = self.encode_audio(
            batch.features.to(device), batch.feature_lens.to(device), heard
        )
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

    @property
    def features(self) -> FeatureSpec:
        """The features the audio encoder reads (kind, bins, 30 s padding)."""
        return base_module(self.audio_encoder).features

    def target_fits(self, num_frames: int, target: str) -> bool:
        """Any clip fits: the LLM's target is not aligned to the audio frames."""
        return True

    def forward(self, batch: AudioBatch) -> ModelOutput:
        """Teacher-forced loss over the assistant replies (mean per target token), plus
        ``ctc.weight`` times the joint CTC loss (mean per CTC label) when it is on."""
        device = self.device
        heard = self.hear(batch.features.to(device), batch.feature_lens.to(device))
        logits, labels = self.compute_logits(batch, only_predicting_targets=True, heard=heard)
        loss, num_targets, num_correct = reply_loss(logits, labels)
        metrics = {}
        if self.ctc_head is not None:
            label_ids = ctc_labels(self.tokenizer, batch_transcripts(batch))
            ctc_sum, num_labels = ctc_loss(heard.ctc_log_probs, heard.enc_out.lens, label_ids)
            loss = loss + self.config.ctc.weight * ctc_sum / max(num_labels, 1)
            metrics["ctc_loss"] = float(ctc_sum.detach())
        if self.label_heads is not None:
            label_loss, _ = self.label_heads.loss(heard.label_logits, batch.labels)
            loss = loss + label_loss
        return ModelOutput(
            loss=loss, num_targets=num_targets, num_correct=num_correct, metrics=metrics
        )

    def _label_words(
        self, label_logits: dict[str, torch.Tensor], embeddings: torch.Tensor
    ) -> list[torch.Tensor]:
        """Per label head ``[B, H]``: its class words' embeddings weighted by its probabilities."""
        if self.label_heads is None:
            return []
        words = torch.stack(
            [
                embeddings[ids].mean(0) if ids else embeddings.new_zeros(embeddings.shape[1])
                for ids in self._label_word_ids
            ]
        )
        out, start = [], 0
        for probs in self.label_heads.probabilities(label_logits):
            n = probs.shape[1]
            out.append(probs.to(words.dtype) @ words[start : start + n])
            start += n
        return out

    def _ctc_log_probs(self, enc_out: EncoderOutput) -> torch.Tensor:
        return self.ctc_head(enc_out.frames.float()).log_softmax(dim=-1)

    @property
    def label_fields(self) -> list[str]:
        """The labels the label heads predict (none without heads)."""
        return list(self.label_heads.fields) if self.label_heads is not None else []

    def label_none_class(self, field: str) -> str:
        """The class a None prediction of ``field`` stands for ("" if its head has none)."""
        return self.label_heads.configs[field].none_class if self.label_heads is not None else ""

    @property
    def has_ctc(self) -> bool:
        """Whether the joint CTC head is there (``ctc.weight > 0``)."""
        return self.ctc_head is not None

    @torch.no_grad()
    def classify(self, batch: AudioBatch) -> dict[str, list[str]]:
        """The label heads' predictions for every clip (empty without label heads)."""
        if self.label_heads is None:
            return {}
        features, lens = batch.features.to(self.device), batch.feature_lens.to(self.device)
        pooled = pool_utterances(self.run_encoder(features, lens), features, lens)
        return self.label_heads.predict(self.label_heads(pooled))

    @torch.no_grad()
    def decode_ctc(self, batch: AudioBatch) -> list[str]:
        """The joint CTC head's greedy transcripts (needs ``ctc.weight > 0``)."""
        if self.ctc_head is None:
            raise ValueError("this audio LLM has no CTC head (model.ctc.weight is 0)")
        device = self.device
        enc_out = self.run_encoder(batch.features.to(device), batch.feature_lens.to(device))
        rows = ctc_greedy(self._ctc_log_probs(enc_out), enc_out.lens)
        return [self.tokenizer.decode(r, skip_special_tokens=True).strip() for r in rows]

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
        names = clip_names or [f"clip {i}" for i in range(len(messages))]
        features, feature_lens = self._features(audio, sampling_rate, names)
        device = self.device
        frames, lens = self.encode_audio(features.to(device), feature_lens.to(device))
        return self.generate_from_frames(
            frames, lens, messages, clip_names=names, **generation_kwargs
        )

    @torch.no_grad()
    def generate_from_frames(
        self,
        frames: torch.Tensor,
        lens: torch.Tensor,
        messages: list[list[dict]],
        *,
        clip_names: list[str] | None = None,
        frames_per_clip: list[list[int]] | None = None,
        **generation_kwargs: Any,
    ) -> list[str]:
        """:meth:`generate` after the encoder: ``frames [B, N, llm_dim]`` as encode_audio gives.

        The inference pipeline encodes long clips window by window and joins a
        conversation's clips, then calls this; ``frames_per_clip`` splits a row's ``lens``
        among its clips (one audio token each), in order.
        """
        device = frames.device
        names = clip_names or [f"clip {i}" for i in range(len(messages))]
        counts = frames_per_clip or lens.tolist()
        chat = self.chat.encode(messages, counts, names, for_generation=True)
        embeds = self._embed(chat, frames, lens)
        kwargs = self._generation_kwargs(generation_kwargs)
        out = self.llm.generate(
            inputs_embeds=embeds, attention_mask=chat.attention_mask.to(device), **kwargs
        )
        texts = self.tokenizer.batch_decode(out, skip_special_tokens=True)
        return [t.strip() for t in texts]

    @torch.no_grad()
    def generate_from_text(
        self, texts: list[str], messages: list[list[dict]], **generation_kwargs: Any
    ) -> list[str]:
        """The LLM alone, reading ``texts`` where each clip would be: the cascade and
        text-ceiling baselines. LoRA adapters are off, so this is the LLM the audio LLM
        was built on (for mini_en: the text-pretrained one)."""
        spoken = [
            [audio_as_text(m, self.config.audio_token, text) for m in conversation]
            for text, conversation in zip(texts, messages, strict=True)
        ]
        chat = self.chat.encode_text(
            spoken, [f"row {i}" for i in range(len(spoken))], for_generation=True
        )
        device = self.device
        kwargs = self._generation_kwargs(generation_kwargs)
        adapters_off = self.llm.disable_adapter() if is_lora(self.llm) else nullcontext()
        with adapters_off:
            out = self.llm.generate(
                input_ids=chat.input_ids.to(device),
                attention_mask=chat.attention_mask.to(device),
                **kwargs,
            )
        length = chat.input_ids.shape[1]
        texts = self.tokenizer.batch_decode(out[:, length:], skip_special_tokens=True)
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

    def _features(
        self, audio, sampling_rate: int, names: list[str]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if isinstance(audio, tuple) and len(audio) == 2 and torch.is_tensor(audio[0]):
            if audio[0].dim() == 3:
                return audio
        spec = self.features
        extractor = build_feature_extractor(spec.kind, num_mel_bins=spec.num_mel_bins)
        return extract_padded(extractor, list(audio), sampling_rate, names)

    def _generation_kwargs(self, overrides: dict[str, Any]) -> dict[str, Any]:
        """Greedy search, at most 128 new tokens, stopping at the LLM's end tokens."""
        kwargs = {
            "max_new_tokens": 128,
            "do_sample": False,
            "num_beams": 1,
            "eos_token_id": self._stop_token_ids(),
            "pad_token_id": self.chat.pad_token_id,
        }
        return {**kwargs, **overrides}

    def _stop_token_ids(self) -> list[int]:
        ids = {self.tokenizer.eos_token_id}
        configured = base_module(self.llm).generation_config.eos_token_id
        if configured is not None:
            ids |= set(configured) if isinstance(configured, list) else {configured}
        return sorted(i for i in ids if i is not None)


def _pretrained_heads(folder: str | Path) -> dict[str, dict[str, torch.Tensor]]:
    """The ``ctc_head`` and ``label_heads`` weights of a ``zipformer_ctc`` folder (none
    for other folders), by head."""
    from safetensors.torch import load_file

    weights = Path(folder) / "model.safetensors"
    config = Path(folder) / "config.json"
    if not config.is_file() or json.loads(config.read_text()).get("model_type") != "zipformer_ctc":
        return {}
    heads: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in load_file(str(weights)).items():
        head, _, rest = key.partition(".")
        if head in ("ctc_head", "label_heads"):
            heads.setdefault(head, {})[rest] = value
    return heads


def _dtype(name: str) -> torch.dtype:
    try:
        return DTYPES[name]
    except KeyError:
        raise ValueError(f"model.llm.dtype '{name}' is not one of {sorted(DTYPES)}") from None


def _check_tokenizer_fits(tokenizer, vocab_size: int, folder: Path) -> None:
    """Refuse a tokenizer far smaller than the LLM's vocabulary (the LLM pads its own).

    Without ``tokenizer.json`` transformers still builds a tokenizer from
    ``tokenizer_config.json``, with only the special tokens: every reply would be empty.
    """
    if len(tokenizer) < vocab_size // 2:
        raise ValueError(
            f"the tokenizer in '{folder}' has {len(tokenizer)} tokens but the LLM was "
            f"trained with {vocab_size}: a tokenizer file (tokenizer.json?) is missing "
            "or comes from another model"
        )


def _clip_names(cuts: list, n: int) -> list[str]:
    if len(cuts) == n:
        return [f"cut '{c.id}'" for c in cuts]
    return [f"clip {i}" for i in range(n)]

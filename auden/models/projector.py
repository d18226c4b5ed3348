"""Projectors: encoder frames -> fewer, LLM-wide frames that replace the audio token.

Two kinds, both downsampling time by ``ds_rate``:

- ``"mlp"`` (default): stack ``ds_rate`` consecutive frames into one vector, then a
  two-layer MLP to the LLM width. Zipformer (25 Hz) with ``ds_rate=4`` and Whisper
  (50 Hz) with ``ds_rate=8`` both give 6.25 audio tokens per second.
- ``"conv"``: a strided ``Conv1d`` (kernel = stride = ``ds_rate``), then the same MLP.
- ``"ctc"``: :class:`CtcCompressor`, one position per token the encoder's CTC head hears
  (its posterior-weighted LLM embedding plus the segment's projected sound), after
  ``summary_chunks`` positions that summarise the whole clip (who speaks, how, what noise).

**Remainder rule.** A clip of ``n`` encoder frames gives ``ceil(n / ds_rate)`` projected
frames: a trailing partial group is completed with zero frames, so the end of an
utterance is never dropped, and a clip of at least one frame always yields a token.
Frames past a clip's length are zeroed first, so a clip projects the same alone or in a
batch. ``projected_lengths`` gives these numbers without running the projector::

    projector = Projector(ProjectorConfig(ds_rate=4), encoder_dim=512, llm_dim=896)
    frames, lens = projector(enc_out.frames, enc_out.lens)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

PROJECTOR_TYPES = ("mlp", "conv", "ctc")


@dataclass
class ProjectorConfig:
    """``type``: "mlp", "conv" or "ctc"; ``hidden_size``: MLP width (0 = the LLM's width).

    ``ds_rate`` applies to mlp/conv; ``summary_chunks`` and ``sound_dropout`` to ctc (the
    clip is cut into that many equal spans, each averaged into one summary position; in
    training, each token's projected sound is left out with that probability).
    """

    type: str = "mlp"
    ds_rate: int = 4
    hidden_size: int = 0
    activation: str = "gelu"
    summary_chunks: int = 4
    sound_dropout: float = 0.0
    hard_tokens: bool = False
    token_sound: bool = True


def projected_lengths(lens: torch.Tensor, ds_rate: int) -> torch.Tensor:
    """Number of projected frames of clips with ``lens`` encoder frames: ceil(n / ds_rate)."""
    return torch.div(lens + ds_rate - 1, ds_rate, rounding_mode="floor")


_ACTIVATIONS = {"gelu": nn.GELU, "relu": nn.ReLU, "silu": nn.SiLU}


class Projector(nn.Module):
    """Downsample encoder frames by ``ds_rate`` and map them to the LLM's width."""

    def __init__(self, config: ProjectorConfig, encoder_dim: int, llm_dim: int) -> None:
        super().__init__()
        if config.type not in PROJECTOR_TYPES:
            raise ValueError(
                f"unknown projector type '{config.type}' (model.projector.type); "
                f"known: {list(PROJECTOR_TYPES)}"
            )
        if config.ds_rate < 1:
            raise ValueError(f"model.projector.ds_rate must be >= 1, got {config.ds_rate}")
        if config.activation not in _ACTIVATIONS:
            raise ValueError(
                f"unknown projector activation '{config.activation}'; known: {sorted(_ACTIVATIONS)}"
            )
        self.config = config
        self.ds_rate = config.ds_rate
        hidden = config.hidden_size or llm_dim
        if config.type == "conv":
            self.downsample = nn.Conv1d(
                encoder_dim, hidden, kernel_size=config.ds_rate, stride=config.ds_rate
            )
            mlp_in = hidden
        else:
            self.downsample = None
            mlp_in = encoder_dim * config.ds_rate
        self.mlp = nn.Sequential(
            nn.Linear(mlp_in, hidden),
            _ACTIVATIONS[config.activation](),
            nn.Linear(hidden, llm_dim),
        )

    def output_lengths(self, lens: torch.Tensor) -> torch.Tensor:
        return projected_lengths(lens, self.ds_rate)

    def forward(
        self, frames: torch.Tensor, lens: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``[B, T, D]`` frames with ``lens[B]`` -> ``[B, ceil(T/ds), llm_dim]`` and new lens."""
        b, t, d = frames.shape
        lens = lens.to(frames.device)
        valid = torch.arange(t, device=frames.device)[None, :] < lens[:, None]
        x = frames.masked_fill(~valid[:, :, None], 0.0)
        out_lens = self.output_lengths(lens)
        t_out = -(-t // self.ds_rate)
        x = nn.functional.pad(x, (0, 0, 0, t_out * self.ds_rate - t))
        if self.downsample is None:
            x = x.reshape(b, t_out, self.ds_rate * d)
        else:
            x = self.downsample(x.transpose(1, 2)).transpose(1, 2)
        x = self.mlp(x)
        out_valid = torch.arange(t_out, device=x.device)[None, :] < out_lens[:, None]
        return x.masked_fill(~out_valid[:, :, None], 0.0), out_lens


def _mlp(config: ProjectorConfig, dim_in: int, llm_dim: int) -> nn.Sequential:
    hidden = config.hidden_size or llm_dim
    return nn.Sequential(
        nn.Linear(dim_in, hidden), _ACTIVATIONS[config.activation](), nn.Linear(hidden, llm_dim)
    )


class CtcCompressor(nn.Module):
    """Encoder frames -> one LLM position per token that the CTC head hears.

    The greedy CTC path cuts a clip into segments (runs of one non-blank label; blank
    frames are dropped). A segment becomes the LLM embedding of its mean CTC posterior
    (a soft token: exactly the word's embedding when CTC is sure) plus an MLP of its mean
    encoder frame (what the token alone does not say). The LLM thus reads the audio in the
    layout it reads text, which a small or text-pretrained LLM needs to reason over what
    was said. Before the segments come ``summary_chunks`` positions, each an MLP of the
    mean frame of one equal span of the clip: who speaks, how fast and high, and any sound
    without words (a clip with no token keeps only these)::

        compressor = CtcCompressor(ProjectorConfig(type="ctc"), encoder_dim=256, llm_dim=896)
        frames, lens = compressor(enc_out.frames, enc_out.lens, ctc_log_probs, llm_embeddings)
    """

    def __init__(self, config: ProjectorConfig, encoder_dim: int, llm_dim: int) -> None:
        super().__init__()
        if config.summary_chunks < 1:
            raise ValueError(
                f"model.projector.summary_chunks must be >= 1, got {config.summary_chunks}"
            )
        if not 0.0 <= config.sound_dropout < 1.0:
            raise ValueError(
                f"model.projector.sound_dropout must be in [0, 1), got {config.sound_dropout}"
            )
        self.config = config
        self.acoustic = _mlp(config, encoder_dim, llm_dim) if config.token_sound else None
        self.summary = _mlp(config, encoder_dim, llm_dim)
        if self.acoustic is not None:
            # The sound starts as a zero offset: at step 0 the LLM reads the CTC tokens as text.
            nn.init.zeros_(self.acoustic[-1].weight)
            nn.init.zeros_(self.acoustic[-1].bias)

    def forward(
        self,
        frames: torch.Tensor,
        lens: torch.Tensor,
        log_probs: torch.Tensor,
        embeddings: torch.Tensor,
        blank: int = 0,
        label_words: list[torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``frames [B, T, D]``, ``log_probs [B, T, V+1]`` (class ``i + 1`` is LLM token
        ``i``) and the LLM's input embeddings ``[>= V, H]`` -> ``[B, N, H]`` and lens.

        ``label_words``, one ``[B, H]`` tensor per label head (the class words' embeddings
        weighted by the head's probabilities), go first: the LLM reads "female fast high"
        as it read the labels in text pretraining."""
        b, t, d = frames.shape
        k = self.config.summary_chunks
        vocab = log_probs.shape[-1] - 1
        device = frames.device
        lens = lens.to(device)
        steps = torch.arange(t, device=device)[None, :]
        valid = steps < lens[:, None]

        # Summary: the mean frame of each of k equal spans (a clip under k frames repeats
        # its frames; its empty spans take the clip's mean).
        chunk = torch.div(steps * k, lens[:, None].clamp(min=1), rounding_mode="floor")
        chunk = (chunk.clamp(max=k - 1) + torch.arange(b, device=device)[:, None] * k)[valid]
        sums = frames.new_zeros(b * k, d).index_add(0, chunk, frames[valid])
        counts = torch.bincount(chunk, minlength=b * k).to(frames.dtype).unsqueeze(1)
        clip_mean = (frames * valid[..., None]).sum(1) / lens[:, None].clamp(min=1)
        chunk_means = torch.where(
            counts > 0, sums / counts.clamp(min=1), clip_mean.repeat_interleave(k, 0)
        )
        summary = self.summary(chunk_means).view(b, k, -1)
        if label_words:
            words = torch.stack(label_words, 1).to(summary.dtype)
            summary = torch.cat([words, summary], 1)
            k += words.shape[1]

        # Segments of the greedy CTC path: runs of one non-blank class.
        probs = log_probs.exp()
        best = probs.argmax(-1)
        keep = (best != blank) & valid
        changed = torch.ones_like(keep)
        changed[:, 1:] = best[:, 1:] != best[:, :-1]
        starts = keep & changed
        in_row = torch.cumsum(starts.long(), 1) - 1  # segment number within its row
        num_segments = starts.sum(1)
        out_lens = k + num_segments
        out = summary.new_zeros(b, int(out_lens.max()), summary.shape[-1])
        out[:, :k] = summary
        if int(num_segments.sum()) == 0:
            return out, out_lens
        offsets = torch.cumsum(num_segments, 0) - num_segments
        index = (in_row + offsets[:, None])[keep]
        total = int(num_segments.sum())
        seg_counts = torch.bincount(index, minlength=total).to(frames.dtype).unsqueeze(1)
        mean_frame = frames.new_zeros(total, d).index_add(0, index, frames[keep]) / seg_counts
        token_probs = probs.new_zeros(total, vocab).index_add(0, index, probs[keep][:, blank + 1 :])
        token_probs = token_probs / token_probs.sum(1, keepdim=True).clamp(min=1e-8)
        if self.config.hard_tokens:
            # The greedy token's embedding (what a cascade reads), gradients through the soft one.
            hard = torch.zeros_like(token_probs).scatter_(1, token_probs.argmax(1, keepdim=True), 1.0)
            token_probs = hard + token_probs - token_probs.detach()
        tokens = token_probs.to(embeddings.dtype) @ embeddings[:vocab]
        if self.acoustic is not None:
            sound = self.acoustic(mean_frame)
            if self.training and self.config.sound_dropout > 0:
                # Tokens without their sound: the LLM must read the word from the token,
                # which CTC spells well, and use the sound only for what it does not say.
                kept = torch.rand(total, 1, device=device) >= self.config.sound_dropout
                sound = sound * kept.to(sound.dtype)
            tokens = tokens + sound.to(tokens.dtype)
        rows = torch.arange(b, device=device)[:, None].expand(b, t)[starts]
        out = out.index_put((rows, k + in_row[starts]), tokens.to(out.dtype))
        return out, out_lens

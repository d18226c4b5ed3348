"""Audio longer than the encoder's window: encode it window by window, join the frames.

Whisper's encoder sees at most 30 s (3000 feature frames); a Zipformer has no hard limit,
but its attention cost grows with the square of the length, so it gets a window too
(30 s unless ``window_s`` says otherwise). A longer clip's features are cut into windows
that overlap by ``overlap_s`` (1 s by default). Each window is encoded and projected on
its own, and the projected frames are joined in order: each overlap is split at its
middle, the left window keeping the first half and the right window the second, so
every stretch of audio is represented once, by the window that saw it with context on
both sides. The LLM then reads one sequence of audio frames for the whole clip, as long
as its context allows::

    windows = Windowing.for_encoder(model.audio_encoder)
    frames = encode_clips(model, [features_of_a_3_minute_file], windows)   # [[n, llm_dim]]
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from auden.models.lora import base_module

FRAMES_PER_SECOND = 100  # both feature kinds (fbank, whisper_fbank) use a 10 ms shift
DEFAULT_WINDOW_S = 30.0
DEFAULT_OVERLAP_S = 1.0


@dataclass(frozen=True)
class Windowing:
    """Window and overlap in feature frames (10 ms each)."""

    window_frames: int
    overlap_frames: int

    def __post_init__(self) -> None:
        if self.window_frames < 1:
            raise ValueError(f"window must be at least one frame, got {self.window_frames}")
        if not 0 <= self.overlap_frames < self.window_frames // 2:
            raise ValueError(
                f"overlap ({self.overlap_frames} frames) must lie in [0, half the window "
                f"({self.window_frames // 2} frames))"
            )

    @classmethod
    def for_encoder(
        cls,
        encoder,
        window_s: float | None = None,
        overlap_s: float = DEFAULT_OVERLAP_S,
    ) -> Windowing:
        """The encoder's own limit (Whisper: 30 s), or ``window_s`` if shorter or no limit."""
        limit = getattr(encoder, "max_input_frames", None)
        window = round((window_s or DEFAULT_WINDOW_S) * FRAMES_PER_SECOND)
        if limit is not None:
            if window_s is not None and window > limit:
                raise ValueError(
                    f"window_s {window_s} is longer than the {encoder.model_type} encoder "
                    f"takes ({limit / FRAMES_PER_SECOND:g} s)"
                )
            window = min(window, int(limit))
        return cls(window, round(overlap_s * FRAMES_PER_SECOND))

    def spans(self, num_frames: int) -> list[tuple[int, int]]:
        """``[start, end)`` of each window over a clip of ``num_frames`` frames."""
        if num_frames <= self.window_frames:
            return [(0, num_frames)]
        if self.overlap_frames == 0:  # abutting windows, the last one shorter
            w = self.window_frames
            return [(s, min(s + w, num_frames)) for s in range(0, num_frames, w)]
        stride = self.window_frames - self.overlap_frames
        spans = []
        start = 0
        while start + self.window_frames < num_frames:
            spans.append((start, start + self.window_frames))
            start += stride
        # The last window ends at the clip's end and keeps a full window of context.
        spans.append((max(num_frames - self.window_frames, 0), num_frames))
        return spans


def encode_clips(
    model, features: list[torch.Tensor], windowing: Windowing, max_windows: int = 16
) -> list[torch.Tensor]:
    """Projected frames ``[n_i, llm_dim]`` of each clip's features ``[T_i, F]``.

    Windows of all clips are encoded together, ``max_windows`` at a time (bounded memory).
    """
    if not hasattr(model.projector, "output_lengths"):
        # A projector whose frame count depends on the content (type ctc) cannot be cut at
        # a time: its windows abut instead of overlapping.
        windowing = Windowing(windowing.window_frames, 0)
    pieces: list[tuple[int, int, int]] = []  # (clip, start, end)
    for i, f in enumerate(features):
        pieces += [(i, s, e) for s, e in windowing.spans(int(f.shape[0]))]
    encoded: list[torch.Tensor] = []
    device = next(model.parameters()).device
    for k in range(0, len(pieces), max_windows):
        chunk = pieces[k : k + max_windows]
        lens = torch.tensor([e - s for _, s, e in chunk], dtype=torch.int64)
        dim = features[0].shape[1]
        batch = torch.zeros(len(chunk), int(lens.max()), dim, dtype=features[0].dtype)
        for row, (i, s, e) in enumerate(chunk):
            batch[row, : e - s] = features[i][s:e]
        frames, out_lens = model.encode_audio(batch.to(device), lens.to(device))
        encoded += [frames[row, : int(n)] for row, n in enumerate(out_lens)]

    windows: list[list[tuple[int, int, torch.Tensor]]] = [[] for _ in features]
    for (i, s, e), x in zip(pieces, encoded):
        windows[i].append((s, e, x))
    encoder = base_module(model.audio_encoder)

    def projected(n: int) -> int:
        if n <= 0:
            return 0
        return int(model.projector.output_lengths(encoder.output_lengths(torch.tensor([n])))[0])

    return [_join(w, projected) for w in windows]


def _join(windows: list[tuple[int, int, torch.Tensor]], projected) -> torch.Tensor:
    """Join windows' frames, cutting each overlap at its middle (in feature frames).

    ``projected(n)`` is the exact number of projected frames of ``n`` feature frames, so
    a window keeps the frames of its own stretch and the total matches the whole clip's.
    """
    if len(windows) == 1:
        return windows[0][2]
    kept = []
    for j, (start, end, frames) in enumerate(windows):
        left = start if j == 0 else (start + windows[j - 1][1]) // 2
        right = end if j == len(windows) - 1 else (windows[j + 1][0] + end) // 2
        a = 0 if left == start else projected(left - start)
        b = frames.shape[0] if right == end else projected(right - start)
        kept.append(frames[a:b])
    return torch.cat(kept, 0)

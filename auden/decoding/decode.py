"""Evaluate a trained model: resolve its checkpoint, decode every test set in batches, score.

::

    from auden.decoding import evaluate
    results = evaluate(cfg)   # an EvalConfig (or the DictConfig Hydra hands to evaluate.py)

For each test set of ``data.test_data_config`` the cuts are batched by Lhotse's
DynamicBucketingSampler without shuffling; each utterance gets a prompt drawn from its
task's prompt file by a generator seeded with ``(seed, cut id, task)``, which is recorded
with the hypothesis. Results land in ``exp_dir/<decoding_method>/`` (see
:mod:`auden.decoding.writers`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from omegaconf import DictConfig
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from auden.audio.features import FeatureSpec
from auden.checkpoint import CheckpointSpec, load_checkpoint, load_model, resolve_checkpoint
from auden.data.config import (
    DataConfig,
    DataSource,
    SamplerConfig,
    follow_model,
    load_data_config,
)
from auden.data.dataset import AudioLlmDataset
from auden.data.loader import build_inputs
from auden.data.mixing import concat_sources
from auden.data.sampler import build_sampler
from auden.decoding.config import EvalConfig, as_eval_config
from auden.decoding.metrics import LABEL_TASK, DecodedUtterance, TaskScores, score_utterances
from auden.decoding.writers import format_table, write_results
from auden.models.ctc import batch_transcripts
from auden.models.text_llm import words_read_for_audio
from auden.types import (
    AudioBatch,
    AudioChatModel,
    CtcTranscriber,
    LabelClassifier,
    config_value,
)

logger = logging.getLogger(__name__)


@dataclass
class TestSetResult:
    """One test set's scores and the files written for it."""

    scores: TaskScores
    files: dict[str, Path]
    utterances: list[DecodedUtterance] = field(default_factory=list)


@dataclass
class EvalResult:
    checkpoint: Path
    out_dir: Path
    suffix: str
    test_sets: list[TestSetResult]

    @property
    def table(self) -> str:
        return format_table([t.scores for t in self.test_sets])


def eval_data_config(cfg: EvalConfig, train_config: dict, features: FeatureSpec) -> DataConfig:
    """The test sets' data settings: the features the model reads (``features``), checked
    against any set in ``data.*``; on-the-fly or precomputed as in the training run."""
    trained = train_config.get("data") or {}
    d = cfg.data
    data = DataConfig(
        feature=d.feature,
        num_mel_bins=d.num_mel_bins,
        pad_to_30s=d.pad_to_30s,
        on_the_fly_feats=bool(_pick(d.on_the_fly_feats, trained.get("on_the_fly_feats"), False)),
        num_workers=d.num_workers,
    )
    return follow_model(data, features)


def build_test_loader(
    source: DataSource,
    data: DataConfig,
    *,
    max_duration: float,
    seed: int,
    num_buckets: int = 10,
    prompt_file: str | None = None,
) -> tuple[DataLoader, int]:
    """Batches of one test set, every cut once, in a fixed order; and the number of cuts."""
    cuts = concat_sources([source], default_prompt_file=prompt_file or None)
    num_cuts = sum(1 for _ in cuts)
    sampler_cfg = SamplerConfig(
        max_duration=max_duration, num_buckets=num_buckets, shuffle=False, drop_last=False
    )
    sampler = build_sampler(cuts, sampler_cfg, seed=seed, shuffle=False)
    dataset = AudioLlmDataset(build_inputs(data), seed=seed, training=False, bad_cut="error")
    loader = DataLoader(dataset, sampler=sampler, batch_size=None, num_workers=data.num_workers)
    return loader, num_cuts


@dataclass
class Decoder:
    """One way of decoding a batch: hypotheses and references, one per row.

    A ``None`` reference leaves the row out (e.g. a clip without the label scored).
    """

    suffix: str  # appended to the test set's name ("" for the model's own replies)
    task: str  # how the results are scored
    hypotheses: Callable[[AudioBatch], list[str]]
    references: Callable[[AudioBatch], list[str | None]]


def model_decoder(
    model: nn.Module, task: str, *, decoding_method: str, beam_size: int, max_new_tokens: int
) -> Decoder:
    def hypotheses(batch: AudioBatch) -> list[str]:
        return model.decode(
            batch,
            decoding_method=decoding_method,
            beam_size=beam_size,
            max_new_tokens=max_new_tokens,
        )

    return Decoder("", task, hypotheses, lambda batch: list(batch.targets))


LABEL_SCORED_TASKS = ("transcribe", "describe")


def auxiliary_decoders(model: nn.Module, task: str) -> list[Decoder]:
    """What a model reports beside its replies: on transcribe test sets, the greedy CTC
    transcripts of an audio LLM's joint-CTC head; on transcribe and describe test sets
    (the clip itself), the predictions of label heads, scored where a clip has the label."""
    if task not in LABEL_SCORED_TASKS:
        return []
    decoders = []
    if task == "transcribe" and _has_ctc(model):
        decoders.append(Decoder("_ctc", "transcribe", model.decode_ctc, batch_transcripts))
    last: dict = {}

    def classify(batch: AudioBatch) -> dict[str, list[str]]:
        # Every label's decoder asks for the same batch: run the encoder once for all.
        if last.get("batch") is not batch:
            last.update(batch=batch, labels=model.classify(batch))
        return last["labels"]

    for name in _label_fields(model):
        decoders.append(
            Decoder(
                f"_{name}",
                LABEL_TASK,
                # A none-class prediction (the head says the clip has no such label) is
                # scored by the class's name.
                lambda batch, name=name: [
                    model.label_none_class(name) if p is None else p for p in classify(batch)[name]
                ],
                lambda batch, name=name: batch.labels.get(name) or [None] * len(batch),
            )
        )
    return decoders


def _has_ctc(model: nn.Module) -> bool:
    """Whether the model has a CTC head beside its own replies (an audio LLM's joint CTC)."""
    return isinstance(model, CtcTranscriber) and model.has_ctc


def _label_fields(model: nn.Module) -> list[str]:
    """The labels the model's label heads predict ([] for a model without any)."""
    return model.label_fields if isinstance(model, LabelClassifier) else []


def baseline_decoder(
    model: nn.Module, task: str, baseline: str, ctc_model: nn.Module | None, max_new_tokens: int
) -> Decoder | None:
    """The LLM of ``model`` given words as text instead of the audio (None: not scored).

    ``text`` gives it the reference words (the ceiling of an end-to-end model; there is
    nothing to score on transcribe). ``cascade`` gives it the encoder's CTC words; on
    transcribe, the CTC words are the cascade's transcript.
    """
    if baseline == "text" and task == "transcribe":
        return None
    if not isinstance(model, AudioChatModel):
        raise ValueError(f"baseline={baseline} needs an audio LLM, not {type(model).__name__}")
    fields = _label_fields(model)

    def words(batch: AudioBatch) -> list[str]:
        """What the LLM reads instead of the audio: label words (when the model has label
        heads, as text pretraining read them out), then the spoken words."""
        if baseline == "text":
            spoken = batch_transcripts(batch)
            labels = [batch.labels.get(f) or [None] * len(batch) for f in fields]
        else:
            spoken = ctc_model.decode(batch) if ctc_model is not None else model.decode_ctc(batch)
            predicted = model.classify(batch)
            labels = [predicted[f] for f in fields]
        return [
            words_read_for_audio([row[i] for row in labels], spoken[i]) for i in range(len(batch))
        ]

    def hypotheses(batch: AudioBatch) -> list[str]:
        if task == "transcribe":
            return ctc_model.decode(batch) if ctc_model is not None else model.decode_ctc(batch)
        spoken = words(batch)
        messages = [m[:-1] if m and m[-1]["role"] == "assistant" else m for m in batch.messages]
        return model.generate_from_text(spoken, messages, max_new_tokens=max_new_tokens)

    return Decoder("", task, hypotheses, lambda batch: list(batch.targets))


@torch.no_grad()
def decode_utterances(
    model: nn.Module,
    loader: DataLoader,
    *,
    decoding_method: str = "greedy_search",
    beam_size: int = 1,
    max_new_tokens: int = 128,
    device: str | torch.device = "cpu",
    total: int | None = None,
    desc: str = "decoding",
) -> list[DecodedUtterance]:
    """Run ``model.decode`` over every batch; one result per cut, with its prompt."""
    decoder = model_decoder(
        model,
        "",
        decoding_method=decoding_method,
        beam_size=beam_size,
        max_new_tokens=max_new_tokens,
    )
    return run_decoders([decoder], loader, device=device, total=total, desc=desc)[0]


@torch.no_grad()
def run_decoders(
    decoders: list[Decoder],
    loader: DataLoader,
    *,
    device: str | torch.device = "cpu",
    total: int | None = None,
    desc: str = "decoding",
) -> list[list[DecodedUtterance]]:
    """Every decoder over every batch (the batches are read once); results per decoder."""
    results: list[list[DecodedUtterance]] = [[] for _ in decoders]
    with tqdm(total=total, desc=desc, unit="utt", dynamic_ncols=True) as bar:
        for batch in loader:
            batch = batch.to(device)
            for decoder, out in zip(decoders, results):
                hyps = decoder.hypotheses(batch)
                refs = decoder.references(batch)
                if len(hyps) != len(batch) or len(refs) != len(batch):
                    raise RuntimeError(
                        f"decoding{decoder.suffix or ''} returned {len(hyps)} hypotheses and "
                        f"{len(refs)} references for a batch of {len(batch)} "
                        f"(cuts {batch.cut_ids[:3]}...)"
                    )
                for cut_id, task, prompt, ref, hyp in zip(
                    batch.cut_ids, batch.tasks, batch.prompts, refs, hyps
                ):
                    if ref is not None:
                        out.append(DecodedUtterance(cut_id, decoder.task or task, prompt, ref, hyp))
            bar.update(len(batch))
    return results


def result_suffix(cfg: EvalConfig, averaging_method: str | None) -> str:
    """icefall-style: ``iter-<i>-avg-<n>[-use-averaged-model][-beam-<k>][-<suffix>]``."""
    spec = cfg.checkpoint.model
    if spec.filename:
        parts = [Path(spec.filename).stem]
    elif spec.iter > 0 and spec.avg > 0:
        parts = [f"iter-{spec.iter}-avg-{spec.avg}"]
    elif spec.epoch > 0 and spec.avg > 0:
        parts = [f"epoch-{spec.epoch}-avg-{spec.avg}"]
    else:
        parts = ["pretrained"]
    if averaging_method == "running_average":
        parts.append("use-averaged-model")
    if _method(cfg) == "beam_search":
        parts.append(f"beam-{cfg.beam_size}")
    if cfg.baseline:
        parts.append(f"baseline-{cfg.baseline}")
    if cfg.suffix:
        parts.append(cfg.suffix)
    return "-".join(parts)


def evaluate(cfg: EvalConfig | DictConfig) -> EvalResult:
    """Resolve the checkpoint, decode every test set, write recogs/errs/wer-summary files."""
    cfg = as_eval_config(cfg)
    if cfg.max_duration <= 0:
        raise ValueError(f"max_duration must be > 0, got {cfg.max_duration}")
    if _method(cfg) == "beam_search" and cfg.beam_size < 1:
        raise ValueError(f"beam_size must be >= 1 for beam_search, got {cfg.beam_size}")
    sources = load_data_config(cfg.data.test_data_config)
    names = [s.name for s in sources]
    if len(set(names)) != len(names):
        raise ValueError(
            f"data.test_data_config '{cfg.data.test_data_config}': test set names must be "
            f"unique, got {names}"
        )
    exp_dir = Path(cfg.exp_dir)
    spec: CheckpointSpec = cfg.checkpoint.model
    path = resolve_checkpoint(exp_dir, spec)
    ckpt = load_checkpoint(path)
    train_config = dict(ckpt.get("config") or {})
    averaging = (ckpt.get("averaged_from") or {}).get("method")
    del ckpt
    device = _device(cfg.device)
    logger.info("decoding with %s on %s", path, device)
    model = load_model(path, device)
    data = eval_data_config(cfg, train_config, model.features)
    suffix = result_suffix(cfg, averaging)
    out_dir = exp_dir / _method(cfg)
    torch.manual_seed(cfg.seed)

    baseline = cfg.baseline
    if baseline not in ("", "cascade", "text"):
        raise ValueError(f"baseline must be '', 'cascade' or 'text', got '{baseline}'")
    ctc_model = None
    if baseline == "cascade" and cfg.baseline_ctc_model:
        from auden.models.ctc import CtcModel

        ctc_model = CtcModel.from_pretrained(cfg.baseline_ctc_model).to(device).eval()
    elif baseline == "cascade" and not _has_ctc(model):
        raise ValueError(
            "baseline=cascade needs CTC words: the model has no joint-CTC head "
            "(model.ctc.weight=0), so give baseline_ctc_model=<a zipformer_ctc export>"
        )

    results = []
    for source in sources:
        if baseline:
            main = baseline_decoder(model, source.task, baseline, ctc_model, cfg.max_new_tokens)
            if main is None:
                continue
            decoders = [main]
        else:
            decoders = [
                model_decoder(
                    model,
                    "",
                    decoding_method=_method(cfg),
                    beam_size=cfg.beam_size if _method(cfg) == "beam_search" else 1,
                    max_new_tokens=cfg.max_new_tokens,
                ),
                *auxiliary_decoders(model, source.task),
            ]
        loader, num_cuts = build_test_loader(
            source,
            data,
            max_duration=cfg.max_duration,
            seed=cfg.seed,
            num_buckets=cfg.data.num_buckets,
            prompt_file=cfg.prompt_file,
        )
        decoded = run_decoders(decoders, loader, device=device, total=num_cuts, desc=source.name)
        if len(decoded[0]) != num_cuts:  # the sampler must not drop a cut (e.g. one > max_duration)
            raise RuntimeError(
                f"test set '{source.name}': decoded {len(decoded[0])} of its {num_cuts} cuts"
            )
        for decoder, utts in zip(decoders, decoded):
            if decoder.suffix and not utts:
                continue  # a label no clip of this set carries
            name = source.name + decoder.suffix
            scores, scored = score_utterances(name, decoder.task or source.task, utts)
            files = write_results(out_dir, name, suffix, scores, scored)
            logger.info(
                "%s (%s): %s; wrote %s",
                name,
                scores.task,
                ", ".join(f"{k} {v}" for k, v in scores.as_rows()),
                files["recogs"],
            )
            results.append(TestSetResult(scores=scores, files=files, utterances=utts))
    result = EvalResult(checkpoint=path, out_dir=out_dir, suffix=suffix, test_sets=results)
    logger.info("results of %s (%s):\n%s", path.name, suffix, result.table)
    return result


def _method(cfg: EvalConfig) -> str:
    return config_value(cfg.decoding_method)


def _pick(override, trained, default):
    if override is not None:
        return config_value(override)
    if trained is not None:
        return trained
    return default


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)

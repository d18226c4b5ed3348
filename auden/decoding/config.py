"""The evaluation config: Hydra structured configs, so a misspelt key is rejected by name.

A recipe's ``evaluate.py``::

    @hydra.main(version_base="1.3", config_path="configs", config_name="evaluate")
    def main(cfg): auden.decoding.evaluate(cfg)

with ``configs/evaluate.yaml`` starting ``defaults: [auden_eval, _self_]``, and::

    python evaluate.py exp_dir=exp/zipformer_qwen2 checkpoint.model.iter=100000 \\
        checkpoint.model.avg=5 decoding_method=beam_search beam_size=4
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from auden.checkpoint import CheckpointSpec


class DecodingMethod(str, Enum):
    greedy_search = "greedy_search"
    beam_search = "beam_search"


@dataclass
class CheckpointConfig:
    """``checkpoint.model``: which weights to decode (see auden.checkpoint.resolve)."""

    model: CheckpointSpec = field(default_factory=CheckpointSpec)


@dataclass
class EvalDataConfig:
    """Test sets, and how to read their features.

    What the features are (kind, bins, 30 s padding) is the model's to say: left unset
    they follow it, and a value that differs from the model is an error. Whether they
    are computed on the fly defaults to what the training run did.
    """

    test_data_config: str = (
        "configs/test_data.yaml"  # yaml list of {name, manifest, task, prompt_file?}
    )
    num_workers: int = 1
    num_buckets: int = 10
    on_the_fly_feats: bool | None = None
    feature: str | None = None  # fbank | whisper_fbank
    num_mel_bins: int | None = None
    pad_to_30s: bool | None = None


@dataclass
class EvalConfig:
    exp_dir: str = "exp"
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    decoding_method: DecodingMethod = DecodingMethod.greedy_search
    beam_size: int = 4  # beam_search only
    data: EvalDataConfig = field(default_factory=EvalDataConfig)
    prompt_file: str = ""  # prompts for test sets whose entry names none (else the task default)
    max_duration: float = 200.0  # seconds of audio per batch
    max_new_tokens: int = 128
    seed: int = 42  # prompt draws
    device: str = "auto"  # auto | cpu | cuda | cuda:<i>
    suffix: str = ""  # appended to the result file names
    # "" decodes the model itself. "cascade": the encoder's greedy CTC words given to the
    # LLM as text (its own joint-CTC head, or baseline_ctc_model); "text": the reference
    # words given to the LLM (the ceiling). Both use the LLM with its adapters off.
    baseline: str = ""
    baseline_ctc_model: str = ""  # a zipformer_ctc export for baseline=cascade


def register_configs() -> None:
    """Put ``auden_eval`` into Hydra's ConfigStore (idempotent)."""
    cs = ConfigStore.instance()
    cs.store(name="auden_eval_schema", node=EvalConfig)
    cs.store(
        name="auden_eval",
        node={
            "defaults": ["auden_eval_schema", "_self_"],
            "hydra": {
                "run": {"dir": "${exp_dir}/hydra/eval-${now:%Y-%m-%d_%H-%M-%S}"},
                "job": {"chdir": False},
            },
        },
    )


def as_eval_config(cfg: DictConfig | EvalConfig) -> EvalConfig:
    """The typed config; a plain DictConfig is first validated against the schema."""
    if isinstance(cfg, EvalConfig):
        return cfg
    if OmegaConf.get_type(cfg) is not EvalConfig:
        cfg = OmegaConf.merge(OmegaConf.structured(EvalConfig), cfg)
    return OmegaConf.to_object(cfg)

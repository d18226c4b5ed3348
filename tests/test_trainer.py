"""The trainer in one process: checkpoints, running average, exact resume, non-finite steps."""

from __future__ import annotations

import logging
import math

import pytest
import torch
from lhotse import CutSet, NumpyFilesWriter
from lhotse.utils import fastcopy

from auden.checkpoint import find_checkpoints, find_epoch_checkpoints, load_checkpoint
from auden.data.config import load_data_config
from auden.data.mixing import WeightedMixture
from auden.training.config import to_plain_dict
from auden.training.loop import NonFiniteLossError, train

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _uninterrupted_and_resumed(cfg, tmp_path) -> tuple[dict, dict]:
    """checkpoint-4.pt of a 4-step run, and of a 2-step run resumed to 4 steps."""
    torch.manual_seed(0)
    full, part = tmp_path / "full", tmp_path / "part"
    train(cfg(full, num_steps=4))
    train(cfg(part, num_steps=2))
    train(cfg(part, num_steps=4, start_batch=2))
    return load_checkpoint(full / "checkpoint-4.pt"), load_checkpoint(part / "checkpoint-4.pt")


def _max_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a)


def test_checkpoints_hold_what_resume_and_averaging_need(training_setup, tmp_path):
    torch.manual_seed(0)
    exp = tmp_path / "exp"
    train(training_setup.train_config(exp, num_steps=12, keep_last_k=2, average_period=2))
    names = [p.name for p in find_checkpoints(exp)]
    assert names == ["checkpoint-12.pt", "checkpoint-9.pt"]  # keep_last_k=2, final step saved
    assert [p.name for p in find_epoch_checkpoints(exp)] == ["epoch-1.pt"]
    ckpt = load_checkpoint(exp / "checkpoint-9.pt")  # weights_only=True
    assert ckpt["batch_idx_train"] == 9 and ckpt["average_period"] == 2
    for key in ("model", "model_avg", "optimizer", "scheduler", "sampler", "rng", "counters"):
        assert ckpt[key] is not None, key
    assert ckpt["model"].keys() == ckpt["model_avg"].keys()
    assert all(
        v.dtype == torch.float64 for v in ckpt["model_avg"].values() if v.is_floating_point()
    )
    assert ckpt["config"]["model"]["model_type"] == "zipformer_ctc"
    assert ckpt["config"]["trainer"]["optimizer"]["name"] == "adamw"  # enums as strings
    assert (exp / "train_config.yaml").is_file()
    assert (exp / "tokenizer" / "tokenizer_config.json").is_file()
    assert list((exp / "tensorboard").glob("events.out.tfevents.*"))


def test_running_average_follows_icefall_formula(training_setup, tmp_path):
    """avg_b = avg_{b-p} * (1 - p/b) + w_b * p/b; with p=2: avg_4 = (w_0 + w_2 + w_4) / 3."""
    torch.manual_seed(0)
    exp = tmp_path / "exp"
    cfg = training_setup.train_config(exp, num_steps=4, average_period=2, save_every_n=2)
    train(cfg)
    c2, c4 = load_checkpoint(exp / "checkpoint-2.pt"), load_checkpoint(exp / "checkpoint-4.pt")
    # avg_2 = w_0 * 0 + w_2 * 1 = w_2
    assert _max_diff(c2["model_avg"], {k: v.double() for k, v in c2["model"].items()}) < 1e-12
    expected = {k: c2["model_avg"][k] * 0.5 + c4["model"][k].double() * 0.5 for k in c4["model"]}
    assert _max_diff(c4["model_avg"], expected) < 1e-12


def test_resume_from_epoch_checkpoint_matches_uninterrupted_run(training_setup, tmp_path):
    torch.manual_seed(0)
    full, part = tmp_path / "full", tmp_path / "part"
    train(training_setup.train_config(full, num_steps=13, save_every_n=100))
    train(training_setup.train_config(part, num_epochs=1, save_every_n=100))
    epoch_end = load_checkpoint(part / "epoch-1.pt")["batch_idx_train"]
    assert 0 < epoch_end < 13
    train(training_setup.train_config(part, num_steps=13, save_every_n=100, start_epoch=2))
    a, b = load_checkpoint(full / "checkpoint-13.pt"), load_checkpoint(part / "checkpoint-13.pt")
    assert _max_diff(a["model"], b["model"]) <= 1e-6
    assert _max_diff(a["model_avg"], b["model_avg"]) <= 1e-6


def test_resume_mid_epoch_with_grad_accum_matches_uninterrupted_run(training_setup, tmp_path):
    torch.manual_seed(0)
    full, part = tmp_path / "full", tmp_path / "part"
    kw = dict(grad_accum=2, save_every_n=2)
    train(training_setup.train_config(full, num_steps=6, **kw))
    train(training_setup.train_config(part, num_steps=2, **kw))
    assert load_checkpoint(part / "checkpoint-2.pt")["sampler"]["batches_in_epoch"] == 4
    train(training_setup.train_config(part, num_steps=6, start_batch=2, **kw))
    a, b = load_checkpoint(full / "checkpoint-6.pt"), load_checkpoint(part / "checkpoint-6.pt")
    assert _max_diff(a["model"], b["model"]) <= 1e-6
    assert _max_diff(a["model_avg"], b["model_avg"]) <= 1e-6


def test_resume_from_a_missing_checkpoint_names_it(training_setup, tmp_path):
    with pytest.raises(FileNotFoundError, match="checkpoint-5.pt"):
        train(training_setup.train_config(tmp_path / "exp", num_steps=6, start_batch=5))


def _overflowing_features(corpus, which: list[int]) -> None:
    """Give cuts ``which`` finite features of 3e38 (near float32's largest): the dataset
    passes them (NaN/Inf features cost only their cut there), and the model's first layers
    overflow to a non-finite loss, as a diverging run's would."""
    cuts = list(CutSet.from_file(corpus.cuts))
    with NumpyFilesWriter(corpus.root / "overflowing") as writer:
        for i in which:
            key = writer.write(cuts[i].id, cuts[i].load_features() * 0 + 3e38)
            features = fastcopy(
                cuts[i].features,
                storage_type=writer.name,
                storage_path=str(writer.storage_path),
                storage_key=key,
            )
            cuts[i] = fastcopy(cuts[i], features=features)
    CutSet.from_cuts(cuts).to_file(corpus.cuts)


def _own_config(training_setup, own, exp, **trainer):
    cfg = training_setup.train_config(exp, **trainer)
    cfg.data.train_data_config = str(own.train_data_config)
    cfg.data.valid_data_config = ""
    return cfg


def test_a_non_finite_loss_skips_the_step_and_is_counted(training_setup, own_tiny_corpus, tmp_path):
    torch.manual_seed(0)
    _overflowing_features(own_tiny_corpus, [3])
    exp = tmp_path / "exp"
    train(_own_config(training_setup, own_tiny_corpus, exp, num_epochs=1, save_every_n=100))
    ckpt = load_checkpoint(exp / "epoch-1.pt")
    assert ckpt["counters"]["nonfinite_steps"] >= 1
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values())


def test_too_many_non_finite_steps_in_a_row_stop_with_a_clear_error(
    training_setup, own_tiny_corpus, tmp_path
):
    _overflowing_features(own_tiny_corpus, list(range(12)))
    cfg = _own_config(training_setup, own_tiny_corpus, tmp_path / "exp", max_nonfinite=3)
    with pytest.raises(NonFiniteLossError, match="3 steps in a row"):
        train(cfg)


def test_unreadable_audio_is_skipped_and_training_finishes_the_epoch(
    training_setup, own_tiny_corpus, tmp_path, caplog
):
    torch.manual_seed(0)
    wavs = sorted((own_tiny_corpus.root / "wav").glob("*.wav"))
    wavs[2].unlink()
    exp = tmp_path / "exp"
    cfg = _own_config(training_setup, own_tiny_corpus, exp, num_epochs=1)
    cfg.data.on_the_fly_feats = True
    with caplog.at_level(logging.WARNING):
        train(cfg)
    ckpt = load_checkpoint(exp / "epoch-1.pt")
    # the cut is skipped each time epoch 1's weighted draw picked it
    sources = load_data_config(cfg.data.train_data_config)
    mixture = WeightedMixture.from_sources(sources, cfg.trainer.seed)
    mixture.set_epoch(1)
    drawn = sum(c.recording_id == wavs[2].stem for c in mixture)
    assert drawn >= 1 and ckpt["counters"]["skipped_cuts"] == drawn
    assert wavs[2].stem in caplog.text


def test_padding_ratio_is_logged(training_setup, tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="auden.training.loop"):
        train(training_setup.train_config(tmp_path / "exp", num_steps=2))
    # Progress lines only (the temporary folder's name also holds "padding").
    lines = [
        m for r in caplog.records if (m := r.getMessage()).startswith("epoch ") and "padding" in m
    ]
    assert lines and all("eta" in line and "audio s/s" in line for line in lines)
    ratio = float(lines[-1].split("padding ")[1].split("%")[0])
    assert 0.0 <= ratio < 100.0 and not math.isnan(ratio)


def test_config_is_saved_resolved_as_plain_yaml(training_setup, tmp_path):
    cfg = training_setup.train_config(tmp_path / "exp")
    plain = to_plain_dict(cfg)
    # the features are the model's to say: unset here, filled from the model by the trainer
    assert plain["data"]["feature"] is None and plain["trainer"]["dtype"] == "float32"
    assert plain["model"]["tokenizer"] == str(training_setup.tokenizer)


def _audio_llm_config(training_setup, tiny_llm_folder, exp, **trainer):
    from auden.models.audio_llm import AudioEncoderConfig, AudioLlmConfig, LlmConfig
    from auden.models.lora import LoraConfig

    cfg = training_setup.train_config(exp, **trainer)
    cfg.model = AudioLlmConfig(
        audio_encoder=AudioEncoderConfig(
            model_type="zipformer", config=str(training_setup.zipformer_config)
        ),
        llm=LlmConfig(pretrained_model=str(tiny_llm_folder), lora=LoraConfig(enabled=True)),
    )
    return cfg


def test_audio_llm_with_frozen_llm_and_lora_resumes_exactly(
    training_setup, tiny_llm_folder, tmp_path
):
    torch.manual_seed(0)
    full, part = tmp_path / "full", tmp_path / "part"
    train(_audio_llm_config(training_setup, tiny_llm_folder, full, num_steps=4, save_every_n=2))
    train(_audio_llm_config(training_setup, tiny_llm_folder, part, num_steps=2, save_every_n=2))
    train(
        _audio_llm_config(
            training_setup, tiny_llm_folder, part, num_steps=4, save_every_n=2, start_batch=2
        )
    )
    a, b = load_checkpoint(full / "checkpoint-4.pt"), load_checkpoint(part / "checkpoint-4.pt")
    assert _max_diff(a["model"], b["model"]) <= 1e-6
    assert _max_diff(a["model_avg"], b["model_avg"]) <= 1e-6
    llm_keys = [k for k in a["model"] if k.startswith("llm.")]
    assert llm_keys and all("lora_" in k for k in llm_keys)  # the frozen base is not copied


def test_audio_llm_adapting_its_top_encoder_layers_with_joint_ctc_resumes_exactly(
    training_setup, tiny_llm_folder, tmp_path
):
    """Encoder top layers + joint CTC head + LoRA, each part at its own learning rate."""
    from auden.models.audio_llm import JointCtcConfig

    def cfg(exp, **kw):
        c = _audio_llm_config(training_setup, tiny_llm_folder, exp, save_every_n=2, **kw)
        c.model.audio_encoder.train = "top_layers"
        c.model.audio_encoder.top_layers = 2
        c.model.ctc = JointCtcConfig(weight=0.3)
        c.trainer.optimizer.part_lr = {"audio_encoder": 3e-4, "ctc_head": 3e-3}
        return c

    a, b = _uninterrupted_and_resumed(cfg, tmp_path)
    assert _max_diff(a["model"], b["model"]) <= 1e-6
    assert any(k.startswith("ctc_head.") for k in a["model"])
    encoder_keys = [k for k in a["model"] if k.startswith("audio_encoder.")]
    assert encoder_keys and not any("frontend" in k for k in encoder_keys)  # bottom stays frozen
    lrs = sorted(g["initial_lr"] for g in a["optimizer"]["param_groups"])
    assert lrs == [1e-4, 3e-4, 3e-3]  # the default lr (projector, LoRA), encoder, CTC head


@pytest.mark.parametrize(
    "key, value", [("grad_accum", 0), ("save_every_n", 0), ("average_period", -1)]
)
def test_impossible_trainer_values_are_rejected_by_name(training_setup, tmp_path, key, value):
    cfg = training_setup.train_config(tmp_path / "exp", **{key: value})
    with pytest.raises(ValueError, match=f"trainer.{key} must be >= 1"):
        train(cfg)


def test_scaled_adam_with_eden_resumes_exactly(training_setup, tmp_path):
    from auden.training.config import OptimizerConfig, SchedulerConfig

    def cfg(exp, **kw):
        c = training_setup.train_config(exp, save_every_n=2, **kw)
        c.trainer.optimizer = OptimizerConfig(name="scaled_adam", lr=0.045)
        c.trainer.scheduler = SchedulerConfig(name="eden", warmup_batches=2, lr_batches=10)
        return c

    a, b = _uninterrupted_and_resumed(cfg, tmp_path)
    assert _max_diff(a["model"], b["model"]) <= 1e-6
    assert a["scheduler"]["last_epoch"] == b["scheduler"]["last_epoch"] == 4


def test_cosine_schedule_warms_up_then_decays_to_its_floor():
    from auden.training.config import SchedulerConfig
    from auden.training.optim import build_scheduler

    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = build_scheduler(
        opt,
        SchedulerConfig(name="cosine", warmup_batches=4, warmup_start=0.5, min_lr_ratio=0.1),
        num_steps=12,
    )
    lrs = []
    for _ in range(12):
        lrs.append(sched.get_last_lr()[0])
        opt.step()
        sched.step()
    lrs.append(sched.get_last_lr()[0])
    assert lrs[0] == pytest.approx(0.5) and lrs[4] == pytest.approx(1.0)
    assert lrs[8] == pytest.approx(0.1 + 0.9 * 0.5)  # half-way through the decay
    assert lrs[12] == pytest.approx(0.1)
    with pytest.raises(ValueError, match="num_steps"):
        build_scheduler(opt, SchedulerConfig(name="cosine"), num_steps=0)


def test_cosine_schedule_with_decay_fraction_holds_the_peak_then_decays():
    from auden.training.config import SchedulerConfig
    from auden.training.optim import build_scheduler

    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    cfg = SchedulerConfig(name="cosine", warmup_batches=2, min_lr_ratio=0.1, decay_fraction=0.2)
    sched = build_scheduler(opt, cfg, num_steps=20)
    lrs = []
    for _ in range(20):
        lrs.append(sched.get_last_lr()[0])
        opt.step()
        sched.step()
    lrs.append(sched.get_last_lr()[0])
    assert lrs[2:17] == pytest.approx([1.0] * 15)  # stable until the last fifth
    assert lrs[16] > lrs[17] > lrs[19] > lrs[20] == pytest.approx(0.1)
    assert lrs[18] == pytest.approx(0.1 + 0.9 * 0.5)  # half-way through the decay
    with pytest.raises(ValueError, match="decay_fraction"):
        build_scheduler(opt, SchedulerConfig(name="cosine", decay_fraction=0.0), num_steps=20)

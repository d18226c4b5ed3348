"""The training data pipeline on a tiny real corpus: data config -> mux -> filters -> sampler -> AudioBatch."""

from __future__ import annotations

import logging

import pytest
import torch
from tinycorpus import write_data_config

from auden.data.config import BadCutMode, DataConfig, load_data_config
from auden.data.dataset import BadCutError
from auden.data.loader import ModelHints, TrainData, build_valid_loader
from auden.data.prompts import PromptSet

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _data_cfg(corpus, **overrides) -> DataConfig:
    cfg = DataConfig(
        train_data_config=str(corpus.train_data_config),
        valid_data_config=str(corpus.valid_data_config),
        num_workers=0,
    )
    cfg.sampler.max_duration = 5.0
    cfg.augment.spec_augment = False
    for key, value in overrides.items():
        setattr(cfg, key, value)
    return cfg


def test_missing_manifest_is_named_in_the_error(tmp_path):
    config = write_data_config(
        tmp_path / "train.yaml", [{"manifest": "nowhere/cuts.jsonl.gz", "task": "transcribe"}]
    )
    with pytest.raises(FileNotFoundError, match="manifest 'nowhere/cuts.jsonl.gz' not found"):
        load_data_config(config)


def test_unknown_key_and_unknown_task_in_a_data_config_are_rejected(tiny_corpus, tmp_path):
    bad_key = write_data_config(
        tmp_path / "a.yaml",
        [{"manifest": str(tiny_corpus.cuts), "task": "transcribe", "wieght": 1}],
    )
    with pytest.raises(ValueError, match="wieght"):
        load_data_config(bad_key)
    bad_task = write_data_config(
        tmp_path / "b.yaml", [{"manifest": str(tiny_corpus.cuts), "task": "translate"}]
    )
    with pytest.raises(ValueError, match="unknown task 'translate'"):
        load_data_config(bad_task)


def test_batches_hold_chat_messages_with_the_task_target_and_a_prompt_from_its_file(tiny_corpus):
    data = TrainData(_data_cfg(tiny_corpus), seed=3)
    batches = list(data.loader(epoch=1))
    tasks = {t for b in batches for t in b.tasks}
    assert tasks == {"transcribe", "describe"}  # both sources of the mux appear
    describe_prompts = set(PromptSet.from_file(tiny_corpus.prompt_files["describe"]).prompts)
    for b in batches:
        assert b.features.shape[0] == len(b.messages) == len(b.targets) == len(b.cuts)
        assert b.features.shape[2] == 80
        assert torch.equal(b.feature_lens, torch.tensor([c.num_frames for c in b.cuts]))
        for cut, task, prompt, target, msgs in zip(
            b.cuts, b.tasks, b.prompts, b.targets, b.messages
        ):
            sup = cut.supervisions[0]
            assert target == (sup.text if task == "transcribe" else sup.custom["description"])
            assert msgs[0] == {
                "role": "user",
                "content": [{"type": "audio"}, {"type": "text", "text": prompt}],
            }
            assert msgs[1] == {"role": "assistant", "content": target}
            if task == "describe":
                assert prompt in describe_prompts
    # an epoch is the sources' total number of cuts, each drawn from a source by weight
    seen = [c.id for b in batches for c in b.cuts]
    assert len(seen) == 2 * len(tiny_corpus.cut_ids)
    assert set(seen) <= set(tiny_corpus.cut_ids)


def test_prompt_draw_depends_only_on_seed_cut_and_epoch():
    prompts = PromptSet(tuple(f"prompt {i}" for i in range(20)))
    draws = [prompts.draw("cut-1", epoch=1, seed=7) for _ in range(3)]
    assert len(set(draws)) == 1
    across_epochs = {prompts.draw("cut-1", epoch=e, seed=7) for e in range(10)}
    assert len(across_epochs) > 1


def test_resuming_mid_epoch_yields_exactly_the_remaining_batches(tiny_corpus):
    cfg = _data_cfg(tiny_corpus)
    cfg.augment.spec_augment = True
    full = list(TrainData(cfg, seed=11).loader(epoch=2))
    resumed = list(TrainData(cfg, seed=11).loader(epoch=2, skip_batches=3))
    assert len(resumed) == len(full) - 3
    for a, b in zip(full[3:], resumed):
        assert a.cut_ids == b.cut_ids and a.prompts == b.prompts
        assert torch.equal(a.features, b.features)  # SpecAugment seeded per batch


def test_workers_build_the_same_batches_as_the_main_process(tiny_corpus):
    cfg = _data_cfg(tiny_corpus)
    cfg.augment.spec_augment = True
    in_main = list(TrainData(cfg, seed=5).loader(epoch=1))
    cfg.num_workers = 2
    in_workers = list(TrainData(cfg, seed=5).loader(epoch=1))
    assert [b.cut_ids for b in in_main] == [b.cut_ids for b in in_workers]
    assert all(torch.equal(a.features, b.features) for a, b in zip(in_main, in_workers))


def test_two_ranks_get_different_batches_and_the_same_number_of_them(tiny_corpus):
    cfg = _data_cfg(tiny_corpus)
    ranks = [list(TrainData(cfg, seed=1, rank=r, world_size=2).loader(epoch=1)) for r in (0, 1)]
    assert len(ranks[0]) == len(ranks[1])
    assert [b.cut_ids for b in ranks[0]] != [b.cut_ids for b in ranks[1]]


def test_target_too_long_for_its_clip_is_dropped_and_logged_with_its_id(tiny_corpus, caplog):
    def fits(num_frames: int, target: str) -> bool:  # like CTC: one frame per character
        return num_frames >= 10 * len(target)

    cfg = _data_cfg(tiny_corpus)
    data = TrainData(cfg, seed=1, hints=ModelHints(fits=fits))
    with caplog.at_level(logging.WARNING, logger="auden.data.filters"):
        batches = list(data.loader(epoch=1))
    kept = [(c, t) for b in batches for c, t in zip(b.cuts, b.targets)]
    assert kept and all(c.num_frames >= 10 * len(t) for c, t in kept)
    assert data.filter.dropped["too_short"] > 0
    assert "too few for target" in caplog.text and "tiny-" in caplog.text

    ratio = _data_cfg(tiny_corpus)
    ratio.filters.min_frames_per_token = 60.0  # 0.6 s of audio per word
    data = TrainData(ratio, seed=1)
    for b in data.loader(epoch=1):
        for c, t in zip(b.cuts, b.targets):
            assert c.num_frames >= 60 * len(t.split())
    assert data.filter.dropped["too_short"] > 0


def _damage(corpus):
    """Delete one wav and corrupt another; return their recording ids."""
    wavs = sorted((corpus.root / "wav").glob("*.wav"))
    wavs[0].unlink()
    wavs[1].write_bytes(b"RIFF not really a wav file")
    return wavs[0].stem, wavs[1].stem


def test_missing_or_corrupt_audio_is_skipped_and_counted_with_its_id(own_tiny_corpus, caplog):
    missing, corrupt = _damage(own_tiny_corpus)
    cfg = _data_cfg(own_tiny_corpus, on_the_fly_feats=True)
    with caplog.at_level(logging.WARNING, logger="auden.data.dataset"):
        batches = list(TrainData(cfg, seed=1).loader(epoch=1))
    skipped = [cid for b in batches for cid in b.skipped_cut_ids]
    assert sorted({s.rsplit("-", 1)[0] for s in skipped}) == sorted([missing, corrupt])
    assert missing in caplog.text and corrupt in caplog.text
    kept = [c.id for b in batches for c in b.cuts]
    assert not {s.rsplit("-", 1)[0] for s in kept} & {missing, corrupt}
    assert len(kept) + len(skipped) == 2 * 12  # every drawn cut is kept or skipped


def test_missing_audio_in_error_mode_raises_naming_the_cut(own_tiny_corpus):
    missing, _ = _damage(own_tiny_corpus)
    cfg = _data_cfg(own_tiny_corpus, on_the_fly_feats=True, bad_cut=BadCutMode.error)
    with pytest.raises(BadCutError, match=f"cut '({missing}|own-0001)"):
        list(TrainData(cfg, seed=1).loader(epoch=1))


def test_pad_to_30s_gives_3000_whisper_frames_with_true_lengths(tiny_corpus):
    cfg = _data_cfg(tiny_corpus, on_the_fly_feats=True, pad_to_30s=True, feature="whisper_fbank")
    batch = next(iter(TrainData(cfg, seed=1).loader(epoch=1)))
    assert batch.features.shape[1] == 3000
    expected = torch.tensor([round(c.duration * 100) for c in batch.cuts])
    assert (batch.feature_lens - expected).abs().max() <= 1


def test_validation_loader_sees_every_cut_once(tiny_corpus):
    loader = build_valid_loader(_data_cfg(tiny_corpus), seed=1)
    ids = sorted(c.id for b in loader for c in b.cuts)
    assert ids == sorted(tiny_corpus.cut_ids)


def test_speed_perturbation_and_noise_are_seeded_per_batch(tiny_corpus):
    cfg = _data_cfg(tiny_corpus, on_the_fly_feats=True)
    cfg.augment.speed_perturb = True
    cfg.augment.noise = str(tiny_corpus.recordings.parent / "tiny_cuts.jsonl.gz")
    first = list(TrainData(cfg, seed=4).loader(epoch=1))
    again = list(TrainData(cfg, seed=4).loader(epoch=1))
    assert all(torch.equal(a.features, b.features) for a, b in zip(first, again))
    plain_cfg = _data_cfg(tiny_corpus, on_the_fly_feats=True)
    plain = list(TrainData(plain_cfg, seed=4).loader(epoch=1))
    assert any(a.features.shape != b.features.shape or not torch.equal(a.features, b.features)
               for a, b in zip(first, plain))


def test_speed_perturbation_needs_on_the_fly_features(tiny_corpus):
    cfg = _data_cfg(tiny_corpus)
    cfg.augment.speed_perturb = True
    with pytest.raises(ValueError, match="on_the_fly_feats"):
        TrainData(cfg, seed=1)


def test_precomputed_features_that_do_not_match_the_config_stop_with_a_clear_error(tiny_corpus):
    wrong_kind = _data_cfg(tiny_corpus, feature="whisper_fbank")
    with pytest.raises(ValueError, match="'kaldi-fbank' features but data.feature=whisper_fbank"):
        next(iter(TrainData(wrong_kind, seed=1).loader(epoch=1)))
    wrong_size = _data_cfg(tiny_corpus, num_mel_bins=128)
    with pytest.raises(ValueError, match="80-dim features but data.num_mel_bins=128"):
        next(iter(TrainData(wrong_size, seed=1).loader(epoch=1)))


def test_filters_that_drop_every_cut_say_so_with_the_data_config(tiny_corpus):
    cfg = _data_cfg(tiny_corpus)
    cfg.filters.min_duration = 100.0
    with pytest.raises(ValueError, match=r"train_data.yaml.*no cut left.*'duration': 48"):
        TrainData(cfg, seed=1)

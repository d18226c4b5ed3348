"""What the audio LLM may learn: encoder training modes, joint CTC, per-part learning
rates, and label heads in encoder pretraining. Each test checks that gradients reach
exactly the parts that should learn."""

from __future__ import annotations

import pytest
import torch
from tiny_audio_llm import make_tiny_llm, random_batch, tiny_config

from auden.auto.auto_model import AutoModel
from auden.models.audio_llm import AudioEncoderConfig, AudioLlm, JointCtcConfig
from auden.models.ctc import CtcEncoderConfig, CtcModel, CtcModelConfig
from auden.models.heads import LabelHeadConfig, LabelHeads, pool_utterances
from auden.training.config import OptimizerConfig
from auden.training.optim import build_optimizer, parameter_groups

TEXTS = ["hello world", "a quick brown fox"]



def _batch(lens=(90, 41)):
    return random_batch(lens, TEXTS)


def _model(llm_folder, train: str, **encoder) -> AudioLlm:
    torch.manual_seed(0)
    config = tiny_config(llm_folder)
    config.audio_encoder = AudioEncoderConfig(
        model_type="whisper", config="tiny-test", train=train, **encoder
    )
    return AudioLlm.from_config(config)


def _encoder_grads(model: AudioLlm) -> set[str]:
    model.zero_grad()
    model.train()
    model(_batch()).loss.backward()
    return {n for n, p in model.audio_encoder.named_parameters() if p.grad is not None}


def test_frozen_encoder_gets_no_gradient_and_stays_in_eval_mode(llm_folder):
    model = _model(llm_folder, "frozen")
    assert _encoder_grads(model) == set()
    assert not model.audio_encoder.training
    assert model.projector.mlp[0].weight.grad is not None


def test_full_encoder_training_reaches_every_encoder_weight(llm_folder):
    model = _model(llm_folder, "full")
    grads = _encoder_grads(model)
    # Whisper's positional table is a parameter transformers never trains.
    learnt = {
        n
        for n, p in model.audio_encoder.named_parameters()
        if p.requires_grad and "embed_positions" not in n
    }
    assert "encoder.conv1.weight" in learnt and learnt <= grads


def test_top_layers_train_only_the_last_layers(llm_folder):
    model = _model(llm_folder, "top_layers", top_layers=2)  # the last block and the final norm
    grads = _encoder_grads(model)
    num_blocks = len(model.audio_encoder.encoder.layers)
    assert grads
    assert all(
        n.startswith(f"encoder.layers.{num_blocks - 1}.") or n.startswith("encoder.layer_norm.")
        for n in grads
    )
    assert model.audio_encoder.encoder.layers[0].training is False  # frozen layers: eval mode
    assert model.audio_encoder.encoder.layers[-1].training is True


def test_top_layers_out_of_range_is_an_error_naming_the_key(llm_folder):
    with pytest.raises(ValueError, match="model.audio_encoder.top_layers"):
        _model(llm_folder, "top_layers", top_layers=0)


def test_unknown_training_mode_is_rejected_by_name(llm_folder):
    with pytest.raises(ValueError, match="model.audio_encoder.train 'some'"):
        _model(llm_folder, "some")


def test_encoder_lora_uses_the_encoders_own_layer_names_and_trains_adapters_only(llm_folder):
    model = _model(llm_folder, "lora")
    grads = _encoder_grads(model)
    assert grads and all("lora_" in n for n in grads)


def test_joint_ctc_adds_its_weighted_loss_and_trains_its_head(llm_folder):
    torch.manual_seed(0)
    config = tiny_config(llm_folder, ctc=JointCtcConfig(weight=0.5))
    model = AudioLlm.from_config(config).train()
    batch = _batch()
    out = model(batch)
    model.ctc_head = None  # the same weights without CTC: the LLM loss alone
    llm_only = model(batch)
    ctc_per_label = out.metrics["ctc_loss"] / sum(
        len(model.tokenizer(t, add_special_tokens=False).input_ids) for t in TEXTS
    )
    expected = float(llm_only.loss) + 0.5 * ctc_per_label
    assert float(out.loss.detach()) == pytest.approx(expected, rel=1e-5)


def _joint_ctc_on_a_ctc_export(llm_folder, tmp_path) -> tuple[AudioLlm, CtcModel]:
    """A CTC model exported on the LLM's tokens, and an audio LLM with joint CTC built on it."""
    torch.manual_seed(0)
    ctc = CtcModel.from_config(
        CtcModelConfig(encoder=CtcEncoderConfig(config="xs"), tokenizer=str(llm_folder))
    )
    ctc.save_pretrained(tmp_path / "ctc")
    config = tiny_config(llm_folder, ctc=JointCtcConfig(weight=0.3))
    config.audio_encoder = AudioEncoderConfig(
        model_type="zipformer", pretrained_model=str(tmp_path / "ctc")
    )
    return AudioLlm.from_config(config).eval(), ctc


def test_joint_ctc_starts_from_the_exported_ctc_head_and_decodes(llm_folder, tmp_path):
    model, ctc = _joint_ctc_on_a_ctc_export(llm_folder, tmp_path)
    assert torch.equal(model.ctc_head.weight, ctc.ctc_head.weight)
    batch = _batch()
    assert model.decode_ctc(batch) == ctc.decode(batch)
    model.train()
    model.zero_grad()
    model(batch).loss.backward()
    assert model.ctc_head.weight.grad is not None
    # Exported with its CTC head, and reloaded the same.
    model.eval().save_pretrained(tmp_path / "export")
    loaded = AutoModel.from_pretrained(tmp_path / "export")
    assert loaded.decode_ctc(batch) == model.decode_ctc(batch)


def test_part_learning_rates_become_optimizer_groups(llm_folder):
    model = _model(llm_folder, "full")
    cfg = OptimizerConfig(lr=1e-3, part_lr={"audio_encoder": 1e-4, "projector.mlp": 5e-3})
    groups = {g["name"]: g for g in parameter_groups(model.named_parameters(), cfg)}
    assert groups["audio_encoder"]["lr"] == 1e-4
    assert groups["projector.mlp"]["lr"] == 5e-3
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert sum(p.numel() for g in groups.values() for p in g["params"]) == trainable
    optimizer = build_optimizer(model.named_parameters(), cfg)
    assert sorted(g["lr"] for g in optimizer.param_groups) == sorted(
        g["lr"] for g in groups.values()
    )


def test_a_part_lr_that_matches_nothing_is_an_error(llm_folder):
    model = _model(llm_folder, "frozen")
    cfg = OptimizerConfig(part_lr={"audio_encoder": 1e-4})  # frozen: nothing trains there
    with pytest.raises(ValueError, match="part_lr names \\['audio_encoder'\\]"):
        parameter_groups(model.named_parameters(), cfg)


def test_label_heads_learn_from_labelled_rows_only(llm_folder):
    torch.manual_seed(0)
    config = CtcModelConfig(
        encoder=CtcEncoderConfig(config="xs"),
        tokenizer=str(llm_folder),
        labels=[LabelHeadConfig("gender", ["male", "female"], weight=1.0)],
    )
    model = CtcModel.from_config(config).train()
    batch = _batch()
    batch.labels = {"gender": ["female", None]}
    out = model(batch)
    assert out.metrics["gender_count"] == 1.0
    no_labels = model(_batch())  # no label at all: only the CTC loss
    assert float(out.loss) > float(no_labels.loss)
    out.loss.backward()
    assert model.label_heads.heads["gender"].weight.grad is not None
    predicted = model.classify(batch)["gender"]
    assert len(predicted) == 2 and set(predicted) <= {"male", "female"}


def test_label_heads_need_two_classes():
    with pytest.raises(ValueError, match="at least two classes"):
        LabelHeads(8, [LabelHeadConfig("gender", ["male"])])


def test_a_head_on_feature_statistics_alone_ignores_the_encoder():
    from auden.models.heads import PooledUtterance

    torch.manual_seed(0)
    pitch = LabelHeadConfig("pitch", ["low", "high"], feature_stats=True, encoder_frames=False)
    heads = LabelHeads(8, [pitch], feature_dim=3).eval()
    features = torch.randn(4, 6)
    before = heads(PooledUtterance(torch.randn(4, 8), features))["pitch"]
    after = heads(PooledUtterance(torch.randn(4, 8), features))["pitch"]  # the encoder moved
    assert torch.equal(before, after)
    with pytest.raises(ValueError, match="encoder_frames=false needs feature_stats=true"):
        LabelHeads(8, [LabelHeadConfig("pitch", ["low", "high"], encoder_frames=False)], 3)


def test_a_none_class_learns_where_the_field_is_absent_and_reads_as_no_word(llm_folder):
    """An `event` head says "none" for speech; the LLM reads nothing for it, and evaluation
    and the cascade see no label there."""
    from auden.models.projector import ProjectorConfig

    torch.manual_seed(0)
    event = LabelHeadConfig("event", ["two beeps", "low hum"], none_class="none", weight=1.0)
    config = tiny_config(
        llm_folder,
        ctc=JointCtcConfig(weight=0.3),
        projector=ProjectorConfig(type="ctc"),
        labels=[event],
    )
    model = AudioLlm.from_config(config).train()
    batch = _batch()
    batch.labels = {"event": [None, "low hum"]}  # row 0 is speech: trained toward "none"
    heads = model.label_heads
    pooled = pool_utterances(
        model.run_encoder(batch.features, batch.feature_lens), batch.features, batch.feature_lens
    )
    _, counts = heads.loss(heads(pooled), batch.labels)
    assert counts["event"][1] == 2  # both rows count, the unlabelled one as "none"
    # Without a none class the unlabelled row adds nothing.
    plain = LabelHeads(heads.heads["event"].in_features, [LabelHeadConfig("event", ["two beeps", "low hum"])])
    assert plain.loss(plain(pooled), batch.labels)[1]["event"][1] == 1
    # Push the head to say "none" for every clip: its label position becomes a zero vector,
    # and predictions say None (no label), which the cascade leaves out.
    with torch.no_grad():
        heads.heads["event"].bias.copy_(torch.tensor([-50.0, -50.0, 50.0]))
    model.eval()
    frames, _ = model.encode_audio(batch.features, batch.feature_lens)
    assert torch.allclose(frames[:, 0], torch.zeros_like(frames[:, 0]), atol=1e-6)
    assert model.classify(batch) == {"event": [None, None]}


def test_a_none_class_must_not_be_one_of_the_classes():
    with pytest.raises(ValueError, match="none_class 'none' is also one of its classes"):
        LabelHeads(8, [LabelHeadConfig("event", ["none", "beep"], none_class="none")])


def test_feature_statistics_reach_an_mlp_head_and_it_trains_on_a_one_clip_batch(llm_folder):
    """A head with feature_stats reads the input features' mean and spread (pitch survives a
    CTC-trained encoder poorly); its BatchNorm must not fail on a batch of one clip."""
    torch.manual_seed(0)
    pitch = LabelHeadConfig("pitch", ["low", "high"], hidden=16, feature_stats=True, weight=1.0)
    config = CtcModelConfig(
        encoder=CtcEncoderConfig(config="xs"), tokenizer=str(llm_folder), labels=[pitch]
    )
    model = CtcModel.from_config(config).train()
    batch = _batch()
    batch.labels = {"pitch": ["low", "high"]}
    model(batch).loss.backward()
    first = model.label_heads.heads["pitch"][1].weight
    bins = model.encoder.features.num_mel_bins
    assert first.shape[1] == model.encoder.output_dim + 2 * bins
    # The statistics columns get gradient: the head does read them.
    assert first.grad[:, model.encoder.output_dim :].abs().sum() > 0
    one = _batch(lens=(90,))
    one.labels = {"pitch": ["high"]}
    model(one).loss.backward()  # BatchNorm on one clip: running statistics, no error
    # The statistics ignore padding: a clip alone pools as it does padded in a batch.
    out = model.encoder(batch.features, batch.feature_lens)
    both = pool_utterances(out, batch.features, batch.feature_lens)
    n = int(batch.feature_lens[1])
    alone = pool_utterances(
        model.encoder(batch.features[1:, :n], batch.feature_lens[1:]),
        batch.features[1:, :n],
        batch.feature_lens[1:],
    )
    assert torch.allclose(both.features[1], alone.features[0], atol=1e-5)


def test_ctc_projector_gives_one_position_per_heard_token_after_the_summary():
    from auden.models.projector import CtcCompressor, ProjectorConfig

    torch.manual_seed(0)
    compressor = CtcCompressor(ProjectorConfig(type="ctc", summary_chunks=2), 6, 4)
    embeddings = torch.randn(5, 4)  # an LLM of 5 tokens; CTC classes: blank + 5
    # A sure CTC path over 7 frames: blank, 3, 3, blank, 1, 1, 4 -> tokens 2, 0, 3.
    path = [0, 3, 3, 0, 1, 1, 4]
    log_probs = torch.full((1, 7, 6), -30.0)
    log_probs[0, torch.arange(7), torch.tensor(path)] = 0.0
    frames = torch.randn(1, 7, 6)
    out, lens = compressor(frames, torch.tensor([7]), log_probs, embeddings)
    assert lens.tolist() == [2 + 3]
    # The sound's offset starts at zero: the token positions are the words' embeddings.
    assert torch.allclose(out[0, 2:], embeddings[[2, 0, 3]], atol=1e-6)
    # A clip alone gives what it gives in a padded batch (here beside a silent clip).
    silent = torch.full((1, 7, 6), -30.0)
    silent[..., 0] = 0.0
    batch_out, batch_lens = compressor(
        torch.cat([frames, frames]),
        torch.tensor([7, 3]),
        torch.cat([log_probs, silent]),
        embeddings,
    )
    assert batch_lens.tolist() == [5, 2]  # a clip without words keeps its summary only
    assert torch.allclose(batch_out[0], out[0], atol=1e-6)


def test_ctc_projector_hard_tokens_read_the_greedy_word_and_still_pass_gradients():
    from auden.models.projector import CtcCompressor, ProjectorConfig

    torch.manual_seed(0)
    embeddings = torch.randn(5, 4)
    # One unsure segment: token 2 at 0.5, tokens 0 and 3 at 0.25 each.
    probs = torch.tensor([[[1e-6, 0.25, 1e-6, 0.5, 0.25, 1e-6]]])
    log_probs = probs.log().requires_grad_()
    frames = torch.randn(1, 1, 6)
    soft = CtcCompressor(ProjectorConfig(type="ctc", summary_chunks=1), 6, 4)
    hard = CtcCompressor(ProjectorConfig(type="ctc", summary_chunks=1, hard_tokens=True), 6, 4)
    soft_out, _ = soft(frames, torch.tensor([1]), log_probs, embeddings)
    hard_out, _ = hard(frames, torch.tensor([1]), log_probs, embeddings)
    assert torch.allclose(hard_out[0, 1], embeddings[2], atol=1e-5)  # the greedy word
    assert not torch.allclose(soft_out[0, 1], embeddings[2], atol=1e-2)  # a blend
    hard_out[0, 1].sum().backward()
    assert log_probs.grad is not None and log_probs.grad.abs().sum() > 0


def test_ctc_projector_sound_dropout_leaves_out_the_sound_in_training_only_and_can_be_off():
    from auden.models.projector import CtcCompressor, ProjectorConfig

    torch.manual_seed(0)
    embeddings = torch.randn(5, 4)
    path = [1, 2, 3, 4, 5] * 40  # 200 sure tokens
    log_probs = torch.full((1, 200, 6), -30.0)
    log_probs[0, torch.arange(200), torch.tensor(path)] = 0.0
    frames = torch.randn(1, 200, 6)
    compressor = CtcCompressor(ProjectorConfig(type="ctc", summary_chunks=1, sound_dropout=0.5), 6, 4)
    torch.nn.init.normal_(compressor.acoustic[-1].weight)  # a sound that shows
    words = embeddings[torch.tensor(path) - 1]
    out, _ = compressor(frames, torch.tensor([200]), log_probs, embeddings)
    bare = (out[0, 1:] - words).abs().amax(1) < 1e-6
    assert 60 < int(bare.sum()) < 140  # about half the tokens without their sound
    compressor.eval()
    out, _ = compressor(frames, torch.tensor([200]), log_probs, embeddings)
    assert not ((out[0, 1:] - words).abs().amax(1) < 1e-6).any()
    with pytest.raises(ValueError, match="sound_dropout"):
        CtcCompressor(ProjectorConfig(type="ctc", sound_dropout=1.0), 6, 4)
    # Without the sound at all, a token is its word (and there is no sound MLP to train).
    bare = CtcCompressor(ProjectorConfig(type="ctc", summary_chunks=1, token_sound=False), 6, 4)
    assert not any(name.startswith("acoustic") for name, _ in bare.named_parameters())
    out, _ = bare.train()(frames, torch.tensor([200]), log_probs, embeddings)
    assert torch.allclose(out[0, 1:], words, atol=1e-6)


def test_ctc_projector_needs_the_joint_ctc_head(llm_folder):
    from auden.models.projector import ProjectorConfig

    config = tiny_config(llm_folder, projector=ProjectorConfig(type="ctc"))
    with pytest.raises(ValueError, match="model.ctc.weight > 0"):
        AudioLlm.from_config(config)


def test_label_heads_of_the_ctc_export_reach_the_audio_llm_and_show_as_words(llm_folder, tmp_path):
    from auden.models.projector import ProjectorConfig

    torch.manual_seed(0)
    labels = [
        LabelHeadConfig("gender", ["male", "female"]),
        LabelHeadConfig("pitch", ["low", "high"]),
    ]
    ctc = CtcModel.from_config(
        CtcModelConfig(
            encoder=CtcEncoderConfig(config="xs"), tokenizer=str(llm_folder), labels=labels
        )
    )
    ctc.save_pretrained(tmp_path / "ctc")
    config = tiny_config(
        llm_folder,
        ctc=JointCtcConfig(weight=0.3),
        projector=ProjectorConfig(type="ctc"),
        labels=labels,
    )
    config.audio_encoder = AudioEncoderConfig(
        model_type="zipformer", pretrained_model=str(tmp_path / "ctc")
    )
    model = AudioLlm.from_config(config).eval()
    head = model.label_heads.heads["gender"]
    assert torch.equal(head.weight, ctc.label_heads.heads["gender"].weight)
    batch = _batch()
    heard = model.hear(batch.features, batch.feature_lens)
    enc_out = heard.enc_out
    frames, lens = model.encode_audio(batch.features, batch.feature_lens, heard)
    summary = config.projector.summary_chunks
    assert (lens >= len(labels) + summary).all()
    # The first position mixes the gender words by the head's probabilities.
    pooled = pool_utterances(enc_out, batch.features, batch.feature_lens)
    probs = model.label_heads.probabilities(model.label_heads(pooled))[0]
    table = model.llm.get_input_embeddings().weight
    words = torch.stack([table[ids].mean(0) for ids in model._label_word_ids[:2]])
    assert torch.allclose(frames[:, 0], probs @ words, atol=1e-5)
    # Those are the tokens text pretraining wrote for the class, after a space.
    female = model.tokenizer(" female", add_special_tokens=False).input_ids
    assert model._label_word_ids[1] == female
    model.train()
    batch.labels = {"gender": ["female", "male"], "pitch": [None, "high"]}
    model(batch).loss.backward()
    assert head.weight.grad is not None
    model.eval().save_pretrained(tmp_path / "export")
    loaded = AutoModel.from_pretrained(tmp_path / "export")
    assert torch.equal(loaded.label_heads.heads["gender"].weight, head.weight)


def test_joint_ctc_keeps_the_pretrained_head_when_the_llm_gains_the_audio_token(tmp_path):
    """A real LLM (Qwen2.5) has no <|AUDIO|>: CTC pretrained on its tokens gets one row less
    than the audio LLM's head, which must still start from it (run.sh stage 1 -> stage 3)."""
    llm = make_tiny_llm(tmp_path / "llm", with_audio_token=False)
    model, ctc = _joint_ctc_on_a_ctc_export(llm, tmp_path)
    old = ctc.ctc_head.weight.shape[0]
    assert model.ctc_head.weight.shape[0] == old + 1  # the audio token was added
    assert torch.equal(model.ctc_head.weight[:old], ctc.ctc_head.weight)
    assert torch.equal(model.ctc_head.bias[:old], ctc.ctc_head.bias)
    assert float(model.ctc_head.bias[old]) == float(ctc.ctc_head.bias.min())
    batch = _batch()
    assert model.decode_ctc(batch) == ctc.decode(batch)

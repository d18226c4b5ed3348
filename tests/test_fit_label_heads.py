"""`python -m auden.training.fit_label_heads`: label heads refitted on a frozen encoder's
pooled clips learn their label, leave every other weight as it was, and are kept only
where validation says so."""

from __future__ import annotations

import pytest
import torch
from tiny_training import make_training_setup

from auden.data.config import DataConfig, follow_model
from auden.models.ctc import CtcModel
from auden.models.heads import LabelHeadConfig
from auden.training.fit_label_heads import (
    HeadFitConfig,
    label_accuracy,
    main,
    pool_clips,
    refit_label_heads,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")

PITCH = LabelHeadConfig("pitch", ["low", "high"], hidden=16, feature_stats=True)


@pytest.fixture(scope="module")
def ctc_folder(tmp_path_factory, tiny_corpus):
    root = tmp_path_factory.mktemp("fit_heads")
    setup = make_training_setup(root / "setup", tiny_corpus)
    config = setup.model_config()
    config.labels = [PITCH]
    torch.manual_seed(0)
    return CtcModel(config).save_pretrained(root / "ctc"), tiny_corpus


def test_refit_heads_learn_the_label_and_leave_the_rest_of_the_model_alone(ctc_folder, tmp_path):
    folder, corpus = ctc_folder
    clips = str(corpus.train_data_config)
    out = tmp_path / "refit"
    assert (
        main(
            [
                str(folder),
                "--train",
                clips,
                "--valid",
                clips,
                "--out",
                str(out),
                "--epochs",
                "150",
            ]
        )
        == 0
    )

    before, after = CtcModel.from_pretrained(folder), CtcModel.from_pretrained(out)
    data = follow_model(DataConfig(), after.features)
    pooled = pool_clips(after, clips, data)
    assert len(pooled) == 24  # each clip once
    assert label_accuracy(after.label_heads, pooled)["pitch"] == 100.0
    assert label_accuracy(before.label_heads, pooled)["pitch"] < 100.0
    old, new = before.state_dict(), after.state_dict()
    changed = {k for k in old if not torch.equal(old[k], new[k])}
    assert changed and all(k.startswith("label_heads.heads.pitch.") for k in changed)


def test_a_refit_that_scores_lower_on_validation_keeps_the_original_head(ctc_folder):
    folder, corpus = ctc_folder
    model = CtcModel.from_pretrained(folder)
    data = follow_model(DataConfig(), model.features)
    train = pool_clips(model, str(corpus.train_data_config), data)
    # Validation says the opposite of training: fitting training makes validation worse.
    flipped = {"low": "high", "high": "low", None: None}
    valid = type(train)(train.pooled, {"pitch": [flipped[v] for v in train.labels["pitch"]]})
    original = {k: v.clone() for k, v in model.label_heads.state_dict().items()}

    (result,) = refit_label_heads(model.label_heads, train, valid, HeadFitConfig(epochs=150))

    assert result.field == "pitch" and result.after < result.before and not result.kept
    for k, v in model.label_heads.state_dict().items():
        assert torch.equal(v, original[k]), k


def test_a_model_without_label_heads_is_refused_by_name(tmp_path, tiny_corpus, capsys):
    setup = make_training_setup(tmp_path / "setup", tiny_corpus)
    folder = CtcModel(setup.model_config()).save_pretrained(tmp_path / "plain")
    clips = str(tiny_corpus.train_data_config)
    assert main([str(folder), "--train", clips, "--valid", clips]) == 2
    err = capsys.readouterr().err
    assert "no label heads" in err and str(folder) in err

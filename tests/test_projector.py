import pytest
import torch

from auden.models.projector import Projector, ProjectorConfig, projected_lengths


@pytest.mark.parametrize("kind", ["mlp", "conv"])
def test_every_input_length_gives_ceil_of_length_over_ds_rate(kind):
    torch.manual_seed(0)
    projector = Projector(ProjectorConfig(type=kind, ds_rate=4), encoder_dim=8, llm_dim=16)
    for n in range(1, 14):
        frames, lens = projector(torch.randn(1, n, 8), torch.tensor([n]))
        expected = (n + 3) // 4
        assert frames.shape == (1, expected, 16) and lens.tolist() == [expected]


def test_remainder_frames_are_kept_and_completed_with_zeros():
    # 9 frames with ds 4: groups [0..3], [4..7], [8 + three zero frames] -> 3 tokens.
    torch.manual_seed(0)
    projector = Projector(ProjectorConfig(ds_rate=4), encoder_dim=2, llm_dim=3)
    frames = torch.randn(1, 9, 2)
    out, lens = projector(frames, torch.tensor([9]))
    assert lens.tolist() == [3]
    last_group = torch.cat([frames[0, 8], torch.zeros(6)])
    torch.testing.assert_close(out[0, 2], projector.mlp(last_group))
    assert projected_lengths(torch.tensor([0, 1, 4, 5, 8, 9]), 4).tolist() == [0, 1, 1, 2, 2, 3]


@pytest.mark.parametrize("kind", ["mlp", "conv"])
def test_clip_projects_the_same_alone_and_in_a_batch(kind):
    torch.manual_seed(0)
    projector = Projector(ProjectorConfig(type=kind, ds_rate=3), encoder_dim=4, llm_dim=5)
    frames = torch.randn(3, 11, 4)
    lens = torch.tensor([11, 7, 1])
    out, out_lens = projector(frames, lens)
    assert out_lens.tolist() == [4, 3, 1]
    for i in range(3):
        alone, _ = projector(frames[i : i + 1, : lens[i]], lens[i : i + 1])
        torch.testing.assert_close(out[i, : out_lens[i]], alone[0])
        assert out[i, out_lens[i] :].abs().sum() == 0


def test_bad_projector_config_names_the_key():
    with pytest.raises(ValueError, match="model.projector.type"):
        Projector(ProjectorConfig(type="transformer"), 4, 4)
    with pytest.raises(ValueError, match="model.projector.ds_rate"):
        Projector(ProjectorConfig(ds_rate=0), 4, 4)

"""``flavor: icefall`` computes what icefall's own Zipformer2 computes, on icefall's weights.

The reference numbers in ``tests/fixtures/icefall_zipformer/`` were made once by running
icefall's code (``tools/make_icefall_zipformer_fixture.py`` says which commit and how);
nothing of icefall's is imported here. Weights go through auden's converter, under
icefall's own key names.
"""

import gzip
import importlib.util
import json
import re
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from auden.models.encoders.zipformer import ZipformerEncoder, resolve_zipformer_config
from auden.models.encoders.zipformer.icefall import (
    IcefallImportError,
    convert_icefall_state,
    infer_config,
)

FIXTURES = Path(__file__).parent / "fixtures" / "icefall_zipformer"
TOOL = Path(__file__).parents[1] / "tools" / "make_icefall_zipformer_fixture.py"
TOLERANCE = 1e-5


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def small_fixture() -> tuple[dict[str, torch.Tensor], dict]:
    from safetensors import safe_open

    with safe_open(str(FIXTURES / "small.safetensors"), "pt") as f:
        config = json.loads(f.metadata()["config"])
    return load_file(str(FIXTURES / "small.safetensors")), config


def icefall_weights(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k[len("weights.") :]: v for k, v in tensors.items() if k.startswith("weights.")}


def small_encoder() -> tuple[ZipformerEncoder, dict[str, torch.Tensor]]:
    tensors, cfg = small_fixture()
    config, state, _ = convert_icefall_state(
        icefall_weights(tensors), num_mel_bins=cfg["num_mel_bins"], pos_head_dim=cfg["pos_head_dim"]
    )
    encoder = ZipformerEncoder(config).eval()
    encoder.load_state_dict(state, strict=True)
    return encoder, tensors


def run_with_stacks(encoder: ZipformerEncoder, features: torch.Tensor, lens: torch.Tensor):
    """The encoder output, with the front end's and every stack's output on the way."""
    seen: dict[str, torch.Tensor] = {}
    hooks = [encoder.frontend.register_forward_hook(lambda m, a, o: seen.update(embed=o[0]))]
    for j, stack in enumerate(encoder.stacks):
        hooks.append(
            stack.register_forward_hook(lambda m, a, o, j=j: seen.update({f"stack{j}": o}))
        )
    with torch.no_grad():
        out = encoder(features, lens)
    for h in hooks:
        h.remove()
    return out, seen


def test_icefall_flavour_matches_icefall_at_every_stack_for_clips_with_partial_groups():
    encoder, ref = small_encoder()
    for clip in (0, 1):
        features = ref[f"clip{clip}.features"][None]
        out, seen = run_with_stacks(encoder, features, torch.tensor([features.shape[1]]))
        assert int(out.lens[0]) == ref[f"clip{clip}.encoder_out"].shape[0]
        seen["encoder_out"] = out.frames[0]
        names = ["embed", *(f"stack{j}" for j in range(6)), "encoder_out"]
        for name in names:
            expected = ref[f"clip{clip}.{name}"]
            got = seen[name].reshape(expected.shape)
            diff = (got - expected).abs().max().item()
            assert diff <= TOLERANCE, f"clip {clip} {name}: max abs diff {diff}"


def test_a_clip_padded_in_a_batch_gives_what_icefall_gives_for_it_alone():
    encoder, ref = small_encoder()
    clips = [ref["clip0.features"], ref["clip1.features"]]
    lens = torch.tensor([len(c) for c in clips])
    features = 1e3 * torch.randn(2, int(lens.max()), clips[0].shape[1])  # garbage padding
    for i, clip in enumerate(clips):
        features[i, : len(clip)] = clip
    with torch.no_grad():
        out = encoder(features, lens)
    for i in range(2):
        expected = ref[f"clip{i}.encoder_out"]
        n = int(out.lens[i])
        assert n == expected.shape[0]
        assert (out.frames[i, :n] - expected).abs().max().item() <= TOLERANCE
        assert out.frames[i, n:].abs().max().item() == 0.0 if n < out.frames.shape[1] else True
    # icefall itself is not batch-invariant: the padded clip's frames move by far more.
    icefall_batched = ref["batch.encoder_out"][1, : ref["clip1.encoder_out"].shape[0]]
    assert (icefall_batched - ref["clip1.encoder_out"]).abs().max().item() > 1e-2


def test_the_ctc_head_is_kept_and_gives_icefall_log_probs():
    tensors, cfg = small_fixture()
    config, state, ctc = convert_icefall_state(
        icefall_weights(tensors), num_mel_bins=cfg["num_mel_bins"], pos_head_dim=cfg["pos_head_dim"]
    )
    assert ctc is not None and ctc.weight.shape == (cfg["vocab_size"], max(cfg["encoder_dim"]))
    encoder = ZipformerEncoder(config).eval()
    encoder.load_state_dict(state)
    features = tensors["clip0.features"][None]
    with torch.no_grad():
        frames = encoder(features, torch.tensor([features.shape[1]])).frames[0]
    log_probs = torch.nn.functional.linear(frames, ctc.weight, ctc.bias).log_softmax(-1)
    assert (log_probs - tensors["clip0.ctc_log_probs"]).abs().max().item() <= TOLERANCE


def released() -> dict:
    return json.loads(gzip.decompress((FIXTURES / "released_keys.json.gz").read_bytes()))


def random_icefall_weights():
    """The fixture tool's seeded weight recipe (the tool imports icefall only when run)."""
    spec = importlib.util.spec_from_file_location("make_icefall_fixture", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.random_icefall_weights


@pytest.mark.parametrize("size", ["small", "medium", "large"])
def test_released_key_sets_convert_to_the_preset_and_count_every_parameter(size):
    table = released()[size]
    with torch.device("meta"):
        state = {k: torch.empty(shape) for k, shape in table["keys"].items()}
        state["decoder.embedding.weight"] = torch.empty(500, 512)
        state["joiner.output_linear.weight"] = torch.empty(500, 512)
        config, encoder_state, ctc = convert_icefall_state(state)
        assert config == resolve_zipformer_config(f"icefall-{size}")
        encoder = ZipformerEncoder(config)
    encoder.load_state_dict(encoder_state, strict=True, assign=True)
    assert ctc is None
    # icefall also counts a per-layer bypass_scale its forward never reads; auden drops it.
    unused = sum(v.numel() for k, v in state.items() if re.search(r"layers\.\d+\.bypass_scale$", k))
    assert encoder.num_params() + unused == table["num_params"]


@pytest.mark.parametrize("size", ["small", "medium", "large"])
def test_released_sizes_match_icefall_outputs_under_seeded_random_weights(size):
    table = released()[size]
    weights = random_icefall_weights()(table["keys"], table["seed"])
    config, state, _ = convert_icefall_state(weights)
    encoder = ZipformerEncoder(config).eval()
    encoder.load_state_dict(state, strict=True)
    ref = load_file(str(FIXTURES / "released.safetensors"))
    with torch.no_grad():
        out = encoder(ref["features"][None], torch.tensor([ref["features"].shape[0]]))
    expected = ref[f"{size}.encoder_out"]
    diff = (out.frames[0] - expected).abs().max().item()
    assert diff <= TOLERANCE, f"{size}: max abs diff {diff} (output scale {expected.abs().max()})"


def test_streaming_checkpoints_and_unknown_keys_are_refused_by_name():
    tensors, _ = small_fixture()
    weights = icefall_weights(tensors)
    causal = dict(weights)
    key = "encoder.encoders.0.layers.0.conv_module1.depthwise_conv.weight"
    causal[key.replace("depthwise_conv.", "depthwise_conv.causal_conv.")] = causal.pop(key)
    with pytest.raises(IcefallImportError, match="streaming .causal."):
        convert_icefall_state(causal)
    odd = dict(weights, **{"encoder.encoders.0.layers.0.mystery.weight": torch.zeros(1)})
    with pytest.raises(IcefallImportError, match="mystery"):
        convert_icefall_state(odd, num_mel_bins=20, pos_head_dim=2)
    with pytest.raises(IcefallImportError, match="--num-mel-bins"):
        infer_config(weights, pos_head_dim=2)  # the fixture has 20 mel bins, not 80


def test_output_lengths_are_icefalls_and_clips_too_short_for_a_frame_are_refused():
    encoder, _ = small_encoder()
    with torch.no_grad():
        for t in range(9, 60):
            out = encoder(torch.randn(1, t, 20), torch.tensor([t]))
            expected = ((t - 7) // 2 + 1) // 2
            assert out.frames.shape[1] == expected == int(encoder.output_lengths(torch.tensor([t])))
    with pytest.raises(ValueError, match=r"\[9, 20\].*icefall"):
        encoder(torch.randn(1, 20, 20), torch.tensor([8]))

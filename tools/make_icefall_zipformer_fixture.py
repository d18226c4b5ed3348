"""Make the icefall Zipformer2 reference fixture that auden's ``flavor: icefall`` is tested against.

Run once, by hand, outside the test suite; the outputs are committed:

    git clone https://github.com/k2-fsa/icefall /tmp/icefall
    git -C /tmp/icefall checkout 36e0420c7e3e849a25b3d24dbf913c424f3d23c9
    python tools/make_icefall_zipformer_fixture.py --icefall /tmp/icefall \
        --out tests/fixtures/icefall_zipformer

The committed fixture was made from k2-fsa/icefall at commit
36e0420c7e3e849a25b3d24dbf913c424f3d23c9 (2026-06-11), files
egs/librispeech/ASR/zipformer/{zipformer,scaling,subsampling}.py, run on the CPU with
torch 2.13.0.

icefall's ``scaling.py`` imports k2 at module level, and k2 has no wheel for current torch.
This script puts a stand-in ``k2`` module first on ``sys.path`` whose swoosh functions are
the published formulas in plain torch, and a stand-in ``icefall.utils`` with the two helpers
the model files import; nothing else of icefall's is replaced. It writes:

- ``small.safetensors``: a small Zipformer2 (six stacks, factors 1,2,4,8,4,2, narrow
  front end) with every weight randomly perturbed (bypass scales outside [0.2, 1], non-zero
  biases, random downsampling weights and norm scales), a CTC head, two clips whose lengths
  leave partial groups at every downsampling factor, and icefall's outputs for each clip
  alone: front end, every stack, encoder output and CTC log-probabilities, plus icefall's
  output for the two clips as one padded batch. Weights are stored under icefall's own
  key names (``weights.<key>``), so the test goes through auden's converter.
- ``released_keys.json.gz``: for icefall's released LibriSpeech small / medium / large
  configurations, every encoder key with its shape, the parameter count and a seed; and
  ``released.safetensors``: icefall's encoder output for one clip at each size under
  :func:`random_icefall_weights` of that seed, which the test regenerates rather than
  storing hundreds of MB of weights.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import tempfile
import textwrap
from pathlib import Path

import torch
from safetensors.torch import save_file

ICEFALL_COMMIT = "36e0420c7e3e849a25b3d24dbf913c424f3d23c9"

# The stand-ins: swoosh formulas from icefall's own docstrings, autocast as a no-op.
_K2_STANDIN = """
import torch

def _swoosh(x, shift, offset):
    return torch.logaddexp(torch.zeros_like(x), x - shift) - 0.08 * x - offset

def swoosh_l_forward(x):
    return _swoosh(x, 4.0, 0.035)

def swoosh_r_forward(x):
    return _swoosh(x, 1.0, 0.313261687)

swoosh_l = swoosh_l_forward
swoosh_r = swoosh_r_forward
"""
_UTILS_STANDIN = """
import contextlib
import torch

@contextlib.contextmanager
def torch_autocast(device_type="cuda", **kwargs):
    yield

def make_pad_mask(lengths, max_len=0, pad_left=False):
    n = max(max_len, int(lengths.max()))
    return torch.arange(n, device=lengths.device)[None, :] >= lengths[:, None]
"""

SMALL = dict(
    num_mel_bins=20,
    frontend_channels=(4, 8, 12),
    downsampling_factor=(1, 2, 4, 8, 4, 2),
    num_encoder_layers=(1, 2, 1, 1, 1, 2),
    encoder_dim=(16, 24, 32, 40, 32, 24),
    feedforward_dim=(32, 48, 64, 64, 64, 48),
    num_heads=(2, 2, 4, 4, 2, 2),
    query_head_dim=8,
    value_head_dim=4,
    pos_head_dim=2,
    pos_dim=16,
    cnn_module_kernel=(7, 5, 5, 3, 5, 7),
    vocab_size=11,
)

# icefall's egs/librispeech/ASR/RESULTS.md, the 2023-05-15/16 zipformer runs.
RELEASED = {
    "small": dict(
        num_encoder_layers=(2, 2, 2, 2, 2, 2),
        feedforward_dim=(512, 768, 768, 768, 768, 768),
        encoder_dim=(192, 256, 256, 256, 256, 256),
        encoder_unmasked_dim=(192, 192, 192, 192, 192, 192),
    ),
    "medium": dict(),
    "large": dict(
        num_encoder_layers=(2, 2, 4, 5, 4, 2),
        feedforward_dim=(512, 768, 1536, 2048, 1536, 768),
        encoder_dim=(192, 256, 512, 768, 512, 256),
        encoder_unmasked_dim=(192, 192, 256, 320, 256, 192),
    ),
}
RELEASED_DEFAULTS = dict(
    num_encoder_layers=(2, 2, 3, 4, 3, 2),
    downsampling_factor=(1, 2, 4, 8, 4, 2),
    feedforward_dim=(512, 768, 1024, 1536, 1024, 768),
    num_heads=(4, 4, 4, 8, 4, 4),
    encoder_dim=(192, 256, 384, 512, 384, 256),
    encoder_unmasked_dim=(192, 192, 256, 256, 256, 192),
    query_head_dim=32,
    value_head_dim=12,
    pos_head_dim=4,
    pos_dim=48,
    cnn_module_kernel=(31, 31, 15, 15, 15, 31),
)


def import_icefall(root: Path):
    model_dir = root / "egs" / "librispeech" / "ASR" / "zipformer"
    if not (model_dir / "zipformer.py").is_file():
        raise SystemExit(f"--icefall {root}: no egs/librispeech/ASR/zipformer/zipformer.py")
    stand_ins = Path(tempfile.mkdtemp(prefix="icefall_standins_"))
    (stand_ins / "k2.py").write_text(textwrap.dedent(_K2_STANDIN))
    (stand_ins / "icefall").mkdir()
    (stand_ins / "icefall" / "__init__.py").write_text("")
    (stand_ins / "icefall" / "utils.py").write_text(textwrap.dedent(_UTILS_STANDIN))
    sys.path[:0] = [str(stand_ins), str(model_dir)]
    import subsampling  # noqa: PLC0415
    import zipformer  # noqa: PLC0415

    return subsampling, zipformer


def build(subsampling, zipformer, cfg: dict, num_mel_bins: int, channels=(8, 32, 128)):
    embed = subsampling.Conv2dSubsampling(
        num_mel_bins, cfg["encoder_dim"][0], *channels, dropout=0.1
    )
    encoder = zipformer.Zipformer2(
        output_downsampling_factor=2,
        downsampling_factor=cfg["downsampling_factor"],
        num_encoder_layers=cfg["num_encoder_layers"],
        encoder_dim=cfg["encoder_dim"],
        encoder_unmasked_dim=cfg.get("encoder_unmasked_dim", cfg["encoder_dim"]),
        query_head_dim=cfg["query_head_dim"],
        pos_head_dim=cfg["pos_head_dim"],
        value_head_dim=cfg["value_head_dim"],
        pos_dim=cfg["pos_dim"],
        num_heads=cfg["num_heads"],
        feedforward_dim=cfg["feedforward_dim"],
        cnn_module_kernel=cfg["cnn_module_kernel"],
        causal=False,
    )
    return embed, encoder


def random_icefall_weights(shapes: dict[str, list[int]], seed: int) -> dict[str, torch.Tensor]:
    """Seeded random weights for icefall's keys that make every path matter.

    icefall's initial scales are tiny (attention scores near zero, residual branches near
    zero), under which a wrong attention scale or position term would go unseen; weights
    of variance 1/fan_in make attention scores O(1) and every branch count. Bypass scales
    are drawn from [-0.3, 1.3], outside the [0.2, 1] icefall clamps to while training.
    The test suite regenerates the medium and large weights with this same function.
    """
    generator = torch.Generator().manual_seed(seed)
    weights = {}
    for key in sorted(shapes):
        shape = shapes[key]
        if key.endswith("bypass_scale"):
            weights[key] = torch.rand(shape, generator=generator) * 1.6 - 0.3
        elif key.endswith("log_scale") or len(shape) <= 1:
            weights[key] = torch.randn(shape, generator=generator) * 0.3
        else:
            fan_in = 1
            for n in shape[1:]:
                fan_in *= n
            weights[key] = torch.randn(shape, generator=generator) / fan_in**0.5
    return weights


def state_shapes(embed, encoder) -> dict[str, list[int]]:
    shapes = {f"encoder_embed.{k}": list(v.shape) for k, v in embed.state_dict().items()}
    shapes.update({f"encoder.{k}": list(v.shape) for k, v in encoder.state_dict().items()})
    return shapes


def load(embed, encoder, weights: dict[str, torch.Tensor]) -> None:
    for prefix, module in (("encoder_embed.", embed), ("encoder.", encoder)):
        module.load_state_dict(
            {k[len(prefix) :]: v for k, v in weights.items() if k.startswith(prefix)}
        )
        module.eval()


def run_encoder(embed, encoder, features, lens):
    """icefall's Model.forward_encoder, keeping each stack's output on the way."""
    stack_outputs = []
    hooks = [
        m.register_forward_hook(lambda _m, _i, out: stack_outputs.append(out))
        for m in encoder.encoders
    ]
    x, x_lens = embed(features, lens)
    pad_mask = torch.arange(x.shape[1])[None, :] >= x_lens[:, None]
    out, out_lens = encoder(x.permute(1, 0, 2), x_lens, pad_mask)
    for h in hooks:
        h.remove()
    stacks = [s.permute(1, 0, 2) for s in stack_outputs]
    return x, x_lens, stacks, out.permute(1, 0, 2), out_lens


def make_small(subsampling, zipformer, out_dir: Path) -> None:
    generator = torch.Generator().manual_seed(17)
    cfg = SMALL
    embed, encoder = build(
        subsampling, zipformer, cfg, cfg["num_mel_bins"], cfg["frontend_channels"]
    )
    # icefall's CTC head is nn.Sequential(Dropout, Linear, LogSoftmax): the Linear is "1".
    ctc = torch.nn.Linear(max(cfg["encoder_dim"]), cfg["vocab_size"])
    weights = random_icefall_weights(
        {
            **state_shapes(embed, encoder),
            "ctc_output.1.weight": list(ctc.weight.shape),
            "ctc_output.1.bias": list(ctc.bias.shape),
        },
        seed=17,
    )
    load(embed, encoder, weights)
    ctc.load_state_dict(
        {"weight": weights["ctc_output.1.weight"], "bias": weights["ctc_output.1.bias"]}
    )
    tensors: dict[str, torch.Tensor] = {f"weights.{k}": v for k, v in weights.items()}

    # 85 frames -> 39 at 50 Hz: partial groups at factors 2, 4 and 8; 61 -> 27 likewise.
    lengths = [85, 61]
    clips = [torch.randn(1, t, cfg["num_mel_bins"], generator=generator) for t in lengths]
    with torch.no_grad():
        for i, clip in enumerate(clips):
            x, x_lens, stacks, out, out_lens = run_encoder(
                embed, encoder, clip, torch.tensor([clip.shape[1]])
            )
            tensors[f"clip{i}.features"] = clip[0]
            tensors[f"clip{i}.embed"] = x[0]
            for j, s in enumerate(stacks):
                tensors[f"clip{i}.stack{j}"] = s[0]
            tensors[f"clip{i}.encoder_out"] = out[0]
            tensors[f"clip{i}.ctc_log_probs"] = ctc(out[0]).log_softmax(dim=-1)
            assert int(out_lens[0]) == out.shape[1]
        batch = torch.zeros(2, max(lengths), cfg["num_mel_bins"])
        for i, clip in enumerate(clips):
            batch[i, : clip.shape[1]] = clip[0]
        _, _, _, out, out_lens = run_encoder(embed, encoder, batch, torch.tensor(lengths))
        tensors["batch.encoder_out"] = out
        tensors["batch.encoder_out_lens"] = out_lens
    config = {k: list(v) if isinstance(v, tuple) else v for k, v in cfg.items()}
    metadata = {
        "icefall_commit": ICEFALL_COMMIT,
        "config": json.dumps(config),
        "torch": torch.__version__,
    }
    tensors = {k: v.detach().contiguous() for k, v in tensors.items()}
    save_file(tensors, str(out_dir / "small.safetensors"), metadata=metadata)


def make_released(subsampling, zipformer, out_dir: Path) -> None:
    """Key sets of the released sizes, and icefall's output for one clip under seeded weights."""
    table = {"icefall_commit": ICEFALL_COMMIT}
    tensors = {}
    generator = torch.Generator().manual_seed(18)
    features = torch.randn(1, 85, 80, generator=generator)
    tensors["features"] = features[0]
    for seed, (size, overrides) in enumerate(RELEASED.items(), start=100):
        cfg = {**RELEASED_DEFAULTS, **overrides}
        embed, encoder = build(subsampling, zipformer, cfg, 80)
        shapes = state_shapes(embed, encoder)
        params = sum(p.numel() for m in (embed, encoder) for p in m.parameters())
        table[size] = {"num_params": params, "seed": seed, "keys": shapes}
        load(embed, encoder, random_icefall_weights(shapes, seed))
        with torch.no_grad():
            _, _, _, out, _ = run_encoder(embed, encoder, features, torch.tensor([85]))
        tensors[f"{size}.encoder_out"] = out[0].contiguous()
        print(f"{size}: {params} encoder_embed + encoder parameters, {len(shapes)} tensors")
    data = (json.dumps(table, separators=(",", ":")) + "\n").encode()
    (out_dir / "released_keys.json.gz").write_bytes(gzip.compress(data, mtime=0))
    save_file(
        tensors, str(out_dir / "released.safetensors"), metadata={"icefall_commit": ICEFALL_COMMIT}
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--icefall", type=Path, required=True, help="an icefall checkout")
    parser.add_argument("--out", type=Path, required=True, help="the fixture folder to write")
    args = parser.parse_args()
    torch.set_num_threads(1)
    subsampling, zipformer = import_icefall(args.icefall)
    args.out.mkdir(parents=True, exist_ok=True)
    make_small(subsampling, zipformer, args.out)
    make_released(subsampling, zipformer, args.out)
    for f in sorted(args.out.iterdir()):
        print(f"{f}: {f.stat().st_size} bytes")


if __name__ == "__main__":
    main()

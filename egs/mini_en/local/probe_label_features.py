#!/usr/bin/env python3
"""How much of a label the frozen stage-1 encoder and the input features hold.

Fits small heads on pooled features of a ``zipformer_ctc`` export (mean encoder frame; the
per-bin mean and standard deviation of the fbank) over the training clips and scores them
on a test split. This is how the label heads' design was chosen (RESULTS.md)::

    python local/probe_label_features.py --model exp/ctc/export --field pitch
"""

from __future__ import annotations

import argparse

import torch
from lhotse import load_manifest_lazy

from auden.models.ctc import CtcModel


def pooled(model: CtcModel, manifest: str, field: str, classes: list[str], limit: int):
    stats, frames, labels = [], [], []
    for cut in load_manifest_lazy(manifest):
        value = (cut.supervisions[0].custom or {}).get(field)
        if value not in classes:
            continue
        feats = torch.from_numpy(cut.load_features())
        with torch.no_grad():
            out = model.encoder(feats[None], torch.tensor([feats.shape[0]]))
        stats.append(torch.cat([feats.mean(0), feats.std(0)]))
        frames.append(out.frames[0, : int(out.lens[0])].mean(0))
        labels.append(classes.index(value))
        if len(labels) >= limit:
            break
    return torch.stack(stats), torch.stack(frames), torch.tensor(labels)


def fit(x, y, x_test, y_test, hidden: int, norm: bool, steps: int = 1500) -> float:
    """Full-batch Adam; test accuracy."""
    torch.manual_seed(0)
    classes = int(y.max()) + 1
    layers = [torch.nn.BatchNorm1d(x.shape[1])] if norm else []
    if hidden:
        layers += [torch.nn.Linear(x.shape[1], hidden), torch.nn.ReLU(), torch.nn.Dropout(0.3),
                   torch.nn.Linear(hidden, classes)]
    else:
        layers += [torch.nn.Linear(x.shape[1], classes)]
    head = torch.nn.Sequential(*layers)
    opt = torch.optim.Adam(head.parameters(), 3e-3, weight_decay=1e-4)
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(head(x), y).backward()
        opt.step()
    head.eval()
    return float((head(x_test).argmax(-1) == y_test).float().mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="a zipformer_ctc export (stage 1)")
    parser.add_argument("--field", default="pitch")
    parser.add_argument("--classes", nargs="+", default=None)
    parser.add_argument("--train", default="data/fbank/mini_en_cuts_train.jsonl.gz")
    parser.add_argument("--test", default="data/fbank/mini_en_cuts_test-unseen.jsonl.gz")
    parser.add_argument("--max-train", type=int, default=6800)
    args = parser.parse_args()
    torch.set_num_threads(1)
    defaults = {"pitch": ["low", "mid", "high"], "speed": ["slow", "steady", "fast"]}
    classes = args.classes or defaults[args.field]
    model = CtcModel.from_pretrained(args.model).eval()
    s, f, y = pooled(model, args.train, args.field, classes, args.max_train)
    s_t, f_t, y_t = pooled(model, args.test, args.field, classes, 10**9)
    rows = [
        ("encoder mean, linear", f, f_t, 0, False),
        ("feature mean+std, MLP, no normalisation", s, s_t, 256, False),
        ("feature mean+std, MLP, BatchNorm", s, s_t, 256, True),
        ("both, MLP, BatchNorm", torch.cat([s, f], 1), torch.cat([s_t, f_t], 1), 256, True),
    ]
    print(f"{args.field}: {len(y)} training clips, {len(y_t)} test clips")
    for name, x, x_t, hidden, norm in rows:
        print(f"  {name:42s} {100 * fit(x, y, x_t, y_t, hidden, norm):5.1f}%")


if __name__ == "__main__":
    main()

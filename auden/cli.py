"""The `auden` command: export a trained model, and ask it about audio files.

    auden export exp/audio_llm --iter 400 --avg 2 --out exp/audio_llm/export
    auden transcribe exp/audio_llm/export a.wav b.wav [--list files.txt] [--jsonl]
    auden chat exp/audio_llm/export a.wav --prompt "Describe the audio."   # streams
    auden chat exp/audio_llm/export a.wav --task describe
    auden serve exp/audio_llm/export --port 8000            # OpenAI-compatible, 127.0.0.1
    auden import-icefall icefall-exp/pretrained.pt --out exp/icefall_encoder
    auden sift data/fbank/cv_cuts_train.jsonl.gz data/sift/cv_sift_cuts_train.jsonl.gz \\
        --llm models/Qwen2.5-3B-Instruct      # LLM-written instruct targets (SIFT data)
"""

from __future__ import annotations

import argparse
import logging
import sys

from auden import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="auden",
        description="Train, evaluate and serve audio LLMs (encoder -> projector -> LLM).",
    )
    parser.add_argument("--version", action="version", version=f"auden {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    export = commands.add_parser(
        "export", help="save a run's (averaged) checkpoint as a self-contained model folder"
    )
    export.add_argument("exp_dir", help="the training run's exp_dir")
    export.add_argument("--out", required=True, help="the folder to write")
    export.add_argument("--filename", default="", help="a checkpoint file (wins if set)")
    export.add_argument("--iter", type=int, default=0, help="average checkpoints up to this batch")
    export.add_argument("--epoch", type=int, default=0, help="average epochs up to this one")
    export.add_argument("--avg", type=int, default=1, help="how many checkpoints to average")

    icefall = commands.add_parser(
        "import-icefall",
        help="turn an icefall Zipformer pretrained.pt into an auden encoder folder (no k2)",
    )
    icefall.add_argument("checkpoint", help="icefall's pretrained.pt (or epoch-N.pt)")
    icefall.add_argument("--out", required=True, help="the encoder folder to write")
    icefall.add_argument(
        "--ctc-out", default=None, help="also write a zipformer_ctc folder with icefall's CTC head"
    )
    icefall.add_argument(
        "--bpe-model", default=None, help="icefall's data/lang_bpe_*/bpe.model (for --ctc-out)"
    )
    icefall.add_argument("--num-mel-bins", type=int, default=80, help="fbank bins (80)")
    icefall.add_argument(
        "--pos-head-dim",
        type=int,
        default=None,
        help="icefall's --pos-head-dim if not 4 (no tensor shape shows it)",
    )

    transcribe = commands.add_parser(
        "transcribe", help="transcribe audio files in batches (path<TAB>text per file)"
    )
    _model_and_audio(transcribe, nargs="*")
    transcribe.add_argument("--list", help="a file of audio paths, one a line")
    transcribe.add_argument("--batch-size", type=int, default=8)
    transcribe.add_argument("--jsonl", action="store_true", help="write JSON lines instead")

    chat = commands.add_parser(
        "chat", help="ask an exported audio LLM about audio files; the reply streams"
    )
    _model_and_audio(chat, nargs="+")

    serve = commands.add_parser("serve", help="serve an exported audio LLM over OpenAI's HTTP API")
    serve.add_argument("model_dir", help="a folder written by `auden export`")
    serve.add_argument("--host", default="127.0.0.1", help="the address to bind (loopback)")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--batch-size", type=int, default=8, help="requests decoded together")
    serve.add_argument("--max-wait-ms", type=float, default=10.0, help="wait for a batch to fill")
    serve.add_argument("--max-body-mb", type=float, default=25.0)
    serve.add_argument("--max-audio-s", type=float, default=600.0, help="audio per request")
    serve.add_argument("--max-concurrent", type=int, default=64, help="requests in flight")
    serve.add_argument("--max-new-tokens", type=int, default=256, help="when a request has none")
    serve.add_argument("--window-s", type=float, default=None, help="long-audio window (s)")
    serve.add_argument("--device", default="cpu")
    _add_sift_parser(commands)
    return parser


def _model_and_audio(sub: argparse.ArgumentParser, nargs: str) -> None:
    sub.add_argument("model_dir", help="a folder written by `auden export`")
    sub.add_argument("audio", nargs=nargs, help="audio files (any format Lhotse reads)")
    sub.add_argument("--prompt", default=None, help="the question (default: the task's prompt)")
    sub.add_argument("--task", default=None, help="a task the model was trained on")
    sub.add_argument("--max-new-tokens", type=int, default=128)
    sub.add_argument("--num-beams", type=int, default=1)
    sub.add_argument("--temperature", type=float, default=None, help="sample (default greedy)")
    sub.add_argument("--top-p", type=float, default=None)
    sub.add_argument("--window-s", type=float, default=None, help="long-audio window (s)")


def _add_sift_parser(commands) -> None:
    from auden.data.sift.modes import MODES
    from auden.data.sift.options import SamplingConfig, SiftOptions

    sift = commands.add_parser(
        "sift",
        help="write instruct targets (SIFT data) for a cut manifest with a local text LLM",
        description="A cut manifest in, an `instruct` cut manifest and its data config out: "
        "a local chat LLM writes a reply (sift_s), a tone-aware reply (sift_ssp) or a "
        "'Sounds like ...' voice description (sit_ssp) from each cut's transcript and "
        "normalised voice metadata. Resumable; re-running gives the same file.",
    )
    sift.add_argument("cuts", help="input cut manifest (jsonl.gz) with transcripts")
    sift.add_argument("out", help="output cut manifest (jsonl.gz)")
    sift.add_argument(
        "--llm", required=True, help="a transformers causal LM folder with a chat template"
    )
    sift.add_argument(
        "--modes", default=",".join(MODES), help=f"comma-separated, of {', '.join(MODES)}"
    )
    sift.add_argument("--metadata-mapping", help="yaml: where the corpus keeps each voice field")
    sift.add_argument(
        "--data-config", help="the data config to write (default: OUT with .yaml for .jsonl.gz)"
    )
    sift.add_argument("--weight", type=float, default=1.0, help="the data config entry's weight")
    d, o = SamplingConfig(), SiftOptions()
    sift.add_argument("--temperature", type=float, default=d.temperature, help="0: greedy")
    sift.add_argument("--top-p", type=float, default=d.top_p)
    sift.add_argument("--top-k", type=int, default=d.top_k)
    sift.add_argument("--repetition-penalty", type=float, default=d.repetition_penalty)
    sift.add_argument(
        "--max-new-tokens", type=int, default=d.max_new_tokens, help="cap on a target's tokens"
    )
    sift.add_argument(
        "--max-words", type=int, default=o.max_words, help="longer targets are dropped"
    )
    sift.add_argument("--seed", type=int, default=o.seed)
    sift.add_argument("--batch-size", type=int, default=o.batch_size)
    sift.add_argument(
        "--part-size", type=int, default=o.part_size, help="input cuts per resumable part"
    )
    sift.add_argument("--device", default=o.device, help="auto, cpu, cuda, cuda:1, ...")
    sift.add_argument(
        "--dtype", default=o.dtype, help="auto (bf16 on GPU, fp32 on CPU), float16, ..."
    )
    sift.add_argument("--no-progress", action="store_true")


def _run_sift(args) -> int:
    import json

    from auden.data.sift.metadata import MetadataMapping
    from auden.data.sift.options import SamplingConfig, SiftOptions
    from auden.data.sift.run import make_sift

    out = args.out
    data_config = args.data_config or (
        out[: -len(".jsonl.gz")] + ".yaml" if out.endswith(".jsonl.gz") else out + ".yaml"
    )
    result = make_sift(
        args.cuts,
        out,
        args.llm,
        SamplingConfig(
            temperature=args.temperature,
            top_p=args.top_p,
            top_k=args.top_k,
            repetition_penalty=args.repetition_penalty,
            max_new_tokens=args.max_new_tokens,
        ),
        SiftOptions(
            modes=tuple(m.strip() for m in args.modes.split(",") if m.strip()),
            seed=args.seed,
            batch_size=args.batch_size,
            part_size=args.part_size,
            max_words=args.max_words,
            device=args.device,
            dtype=args.dtype,
        ),
        MetadataMapping.from_yaml(args.metadata_mapping) if args.metadata_mapping else None,
        data_config=data_config,
        weight=args.weight,
        progress=not args.no_progress,
    )
    summary = {
        "manifest": str(result.manifest),
        "data_config": str(result.data_config),
        "input_cuts": result.num_input_cuts,
        "kept": result.kept,
        "dropped": result.dropped,
        "unmapped": result.unmapped,
    }
    sys.stdout.write(json.dumps(summary) + "\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    # auden's own progress at INFO; other libraries (Lhotse logs its audio backends on the
    # root logger) only when something is wrong.
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("auden").setLevel(logging.INFO)
    try:
        return _run(args)
    except (OSError, ValueError) as e:
        # The user's input was wrong (a file, a folder, a flag) or the disk failed: one
        # line that names it, not a traceback through the library. Bugs keep theirs.
        sys.stderr.write(f"auden {args.command}: error: {e}\n")
        return 2


def _run(args: argparse.Namespace) -> int:
    if args.command == "sift":
        return _run_sift(args)
    if args.command == "export":
        from auden.checkpoint import CheckpointSpec
        from auden.inference.export import export_model

        spec = CheckpointSpec(
            filename=args.filename, iter=args.iter, epoch=args.epoch, avg=args.avg
        )
        out = export_model(args.exp_dir, spec, args.out)
        print(out)
        return 0
    if args.command == "import-icefall":
        from auden.checkpoint.icefall import import_icefall

        # An IcefallImportError is a ValueError: main() prints it as one line (exit 2).
        result = import_icefall(
            args.checkpoint,
            args.out,
            ctc_out=args.ctc_out,
            bpe_model=args.bpe_model,
            num_mel_bins=args.num_mel_bins,
            pos_head_dim=args.pos_head_dim,
        )
        for folder in (result.encoder_dir, result.ctc_dir):
            if folder is not None:
                print(folder)
        return 0
    if args.command == "serve":
        from auden.inference.server import ServerConfig, serve

        config = ServerConfig(
            host=args.host,
            port=args.port,
            batch_size=args.batch_size,
            max_wait_ms=args.max_wait_ms,
            max_body_mb=args.max_body_mb,
            max_audio_s=args.max_audio_s,
            max_concurrent=args.max_concurrent,
            max_new_tokens=args.max_new_tokens,
        )
        serve(args.model_dir, config, window_s=args.window_s, device=args.device)
        return 0
    from auden.inference import commands
    from auden.inference.pipeline import AudioTextToTextPipeline

    files = list(args.audio)
    if args.command == "transcribe" and args.list:
        files += commands.read_list(args.list)
    if not files:
        raise ValueError("no audio: give audio files or --list FILE")
    p = AudioTextToTextPipeline.from_pretrained(args.model_dir, window_s=args.window_s)
    generate = {
        "max_new_tokens": args.max_new_tokens,
        "num_beams": args.num_beams,
        "temperature": args.temperature,
        "top_p": args.top_p,
    }
    if args.command == "chat":
        return commands.chat(p, files, prompt=args.prompt, task=args.task, **generate)
    return commands.transcribe_files(
        p,
        files,
        prompt=args.prompt,
        task=args.task,
        batch_size=args.batch_size,
        jsonl=args.jsonl,
        **generate,
    )


if __name__ == "__main__":
    raise SystemExit(main())

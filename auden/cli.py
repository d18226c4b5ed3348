"""The `auden` command. Subcommands are added as the library grows."""

from __future__ import annotations

import argparse

from auden import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="auden",
        description="Train, evaluate and serve audio LLMs (encoder -> projector -> LLM).",
    )
    parser.add_argument("--version", action="version", version=f"auden {__version__}")
    parser.add_subparsers(dest="command", metavar="COMMAND")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Which auden package may import which (docs/ARCHITECTURE.md), checked by reading imports.

Imports are read with ``ast`` from every file under ``auden/``, including the ones inside
functions (lazy imports still tie packages together); only ``if TYPE_CHECKING:`` blocks,
which never run, are skipped.
"""

from __future__ import annotations

import ast
import textwrap
from pathlib import Path

AUDEN = Path(__file__).resolve().parents[1] / "auden"

# package (first name under auden/) -> the auden packages it may import. Every package
# may import the root (`from auden import __version__`) and its own modules.
ALLOWED: dict[str, set[str]] = {
    "types": set(),
    "atomic": set(),
    "audio": {"atomic"},
    "data": {"audio", "types", "atomic"},
    "models": {"audio", "types", "auto", "atomic"},
    "auto": {"models", "types"},
    "checkpoint": {"models", "auto", "types", "atomic"},
    "training": {"data", "models", "checkpoint", "audio", "types", "auto", "atomic"},
    "decoding": {"data", "models", "checkpoint", "audio", "types", "auto", "atomic"},
    "inference": {"models", "audio", "checkpoint", "types", "auto", "atomic", "data"},
    "cli": {"inference", "checkpoint", "data"},  # the command hub: export, chat, data tools
}
NEVER = {"egs", "tests", "tools", "benchmarks"}  # outside the library


def _type_checking_block(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")
    )


def imported_modules(source: str, module: str) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in ``source`` that can run."""
    found: list[tuple[int, str]] = []
    package = module.rsplit(".", 1)[0]

    def visit(node: ast.AST) -> None:
        if _type_checking_block(node):
            return
        if isinstance(node, ast.Import):
            found.extend((node.lineno, a.name) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            if name == "auden":  # `from auden import training` names packages
                found.extend((node.lineno, f"auden.{a.name}") for a in node.names)
            else:
                found.append((node.lineno, name))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(source))
    return found


def violations(root: Path) -> list[str]:
    """Every import under ``root`` (an ``auden/`` folder) that breaks :data:`ALLOWED`."""
    out = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        owner = rel.parts[0].removesuffix(".py")
        if owner == "__init__":
            continue
        module = ".".join(("auden", *rel.with_suffix("").parts))
        for line, name in imported_modules(path.read_text(), module):
            top = name.split(".")[0]
            if top in NEVER:
                out.append(f"auden/{rel}:{line} imports {name} (the library never imports {top})")
                continue
            if top != "auden" or name == "auden":
                continue
            target = name.split(".")[1]
            if target == "__version__" or target == owner:
                continue
            if owner not in ALLOWED:
                out.append(f"auden/{rel}:{line}: package '{owner}' has no import rule")
            elif target not in ALLOWED[owner]:
                out.append(
                    f"auden/{rel}:{line} imports {name}: '{owner}' may import only "
                    f"{sorted(ALLOWED[owner]) or 'no other auden package'}"
                )
    return out


def test_the_library_follows_the_import_rule():
    assert violations(AUDEN) == []


def test_every_package_has_a_rule():
    packages = {p.name.removesuffix(".py") for p in AUDEN.iterdir()}
    packages = {p for p in packages if not p.startswith(("_", "."))}
    assert packages <= set(ALLOWED), sorted(packages - set(ALLOWED))


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "auden"
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


def test_a_forbidden_import_is_reported_with_file_and_line(tmp_path):
    root = _tree(
        tmp_path,
        {
            "models/fine.py": "from auden.types import AudioBatch\nfrom . import sibling\n",
            "models/bad.py": "import torch\n\ndef f():\n    from auden.training.trainer import train\n",
            "inference/bad.py": "from auden import training\n",
            "data/bad.py": "from ..models import ctc\n",
            "decoding/bad.py": "import egs.mini_en.train\n",
        },
    )
    found = violations(root)
    assert len(found) == 4, found
    assert any(v.startswith("auden/models/bad.py:4 imports auden.training.trainer") for v in found)
    assert any(v.startswith("auden/inference/bad.py:1 imports auden.training") for v in found)
    assert any(v.startswith("auden/data/bad.py:1 imports auden.models") for v in found)
    assert any("auden/decoding/bad.py:1 imports egs.mini_en.train" in v for v in found)


def test_imports_for_type_annotations_only_are_allowed(tmp_path):
    root = _tree(
        tmp_path,
        {
            "types.py": """
                from typing import TYPE_CHECKING
                if TYPE_CHECKING:
                    from auden.audio.features import FeatureSpec
                """
        },
    )
    assert violations(root) == []

"""The house rule on size: no module over 400 lines, no function over 80 (docstrings included)."""

from __future__ import annotations

import ast
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MAX_MODULE, MAX_FUNCTION = 400, 80


def _sources() -> list[Path]:
    """The project's Python files; hidden folders (virtual environments) are not walked."""
    files = []
    for top in ("src/cryopick", "benchmarks", "scripts"):
        for folder, dirs, names in os.walk(ROOT / top):
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            files += [Path(folder) / n for n in names if n.endswith(".py")]
    return sorted(files)


def oversized(path: Path, root: Path = ROOT) -> list[str]:
    """'path: what' for the module and each function of ``path`` that is over the limits."""
    text = path.read_text()
    name = path.relative_to(root)
    out = [f"{name}: {len(text.splitlines())} lines"] if len(text.splitlines()) > MAX_MODULE else []
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            n = node.end_lineno - node.lineno + 1
            if n > MAX_FUNCTION:
                out.append(f"{name}:{node.lineno} {node.name}(): {n} lines")
    return out


def test_the_checker_sees_an_oversized_function_and_module(tmp_path):
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION))
    p = tmp_path / "big.py"
    p.write_text(f"def big():\n{body}\n\n\ndef small():\n    return 1\n")
    assert oversized(p, tmp_path) == [f"big.py:1 big(): {MAX_FUNCTION + 1} lines"]
    p.write_text("x = 1\n" * (MAX_MODULE + 1))
    assert oversized(p, tmp_path) == [f"big.py: {MAX_MODULE + 1} lines"]


@pytest.mark.parametrize("path", _sources(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_or_function_over_the_limits(path):
    assert oversized(path) == []

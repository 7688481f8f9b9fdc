"""The house rules a reviewer checks, as tests: stage order, no import circles, the
package list of the wheel, and module sizes.

Data flows template -> geodesic -> formats -> evaluation -> summary -> insight /
leaderboard -> cli (README, "Development"). A module may import (at the top or inside a
function) only from its own package or from an earlier stage.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PKG = ROOT / "dpeval"

# stage of each top-level name under dpeval; equal stages may not import each other
STAGES: dict[str, float] = {
    "errors": 0, "_typing": 0, "_io": 0, "_safe_pickle": 0, "_argtypes": 0, "_output": 0,
    "_assets": 0, "_kernel_turn": 0,
    "distributed": 0,  # generic Dask helpers only; stage code ships its own tasks
    "template": 1,
    "params": 1.5,  # reads the part tables from template
    "geodesic": 2,
    "formats": 3,
    "synth": 3.5,  # writes files in the formats' layout
    "evaluation": 4,
    "summary": 5,
    "cse": 5.2,  # CSE scoring: evaluation core + summary
    "api": 5.5,
    "insight": 6,
    "integrations": 6,
    "cache": 6,  # dpeval cache: builds the geodesic table ahead of time
    "leaderboard": 6.5,
    "cli": 7,
}  # fmt: skip


def _modules() -> dict[str, Path]:
    out = {}
    for p in PKG.rglob("*.py"):
        parts = list(p.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = p
    return out


def _imports(name: str, path: Path, *, top_only: bool) -> set[str]:
    """dpeval modules imported by one module (relative imports resolved)."""
    pkg = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = tree.body if top_only else list(ast.walk(tree))
    found = set()
    for node in nodes:
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg.split(".")[: len(pkg.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("dpeval"):
                if node.module is None:
                    found |= {f"{target}.{a.name}" for a in node.names}
                else:
                    found.add(target)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("dpeval")}
    return found


def _stage(module: str) -> tuple[str, float | None]:
    top = module.split(".")[1] if "." in module else ""
    return top, STAGES.get(top)


def test_every_module_has_a_stage():
    unknown = sorted({_stage(m)[0] for m in _modules() if m != "dpeval"} - set(STAGES))
    assert not unknown, f"give these a stage in STAGES and in the README map: {unknown}"


def test_no_module_imports_a_later_stage():
    bad = []
    for name, path in _modules().items():
        if name == "dpeval":  # the package root re-exports the public API
            continue
        top, stage = _stage(name)
        for target in _imports(name, path, top_only=False):
            t_top, t_stage = _stage(target)
            if target == "dpeval" or target == "dpeval.__version__" or t_top == top:
                continue
            later = t_stage is None or stage is None or t_stage > stage
            if later or (t_stage == stage and stage > 0):
                bad.append(f"{name} (stage {stage}) imports {target} (stage {t_stage})")
    assert not bad, "\n".join(sorted(bad))


def test_no_import_circles_at_module_level():
    mods = _modules()
    graph = {}
    for name, path in mods.items():
        deps = set()
        for target in _imports(name, path, top_only=True):
            while target and target not in mods:  # `from pkg import name` -> pkg
                target = target.rpartition(".")[0]
            if target and target != name:
                deps.add(target)
        graph[name] = deps
    # a package imports its own submodules in __init__; a circle needs a way back
    state: dict[str, int] = {}
    stack: list[str] = []
    circles = []

    def visit(n: str) -> None:
        state[n] = 1
        stack.append(n)
        for d in sorted(graph.get(n, ())):
            if state.get(d) == 1 and not n.startswith(d + "."):
                circles.append(" -> ".join([*stack[stack.index(d) :], d]))
            elif d not in state:
                visit(d)
        stack.pop()
        state[n] = 2

    for n in sorted(graph):
        if n not in state:
            visit(n)
    assert not circles, "\n".join(circles)


def test_wheel_lists_every_package():
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    packages = re.search(r"^packages = \[(.*?)\]", text, re.M).group(1)
    listed = set(packages.replace('"', "").split(", "))
    found = {
        ".".join(p.parent.relative_to(ROOT).parts)
        for p in PKG.rglob("__init__.py")
        if "__pycache__" not in p.parts
    }
    assert found - listed == set(), "add these to [tool.setuptools] packages"


@pytest.mark.parametrize("path", sorted(PKG.rglob("*.py")), ids=lambda p: str(p.relative_to(ROOT)))
def test_long_modules_say_why(path):
    """A module over ~500 lines says at its top why it is long."""
    text = path.read_text(encoding="utf-8")
    if text.count("\n") <= 520:
        return
    doc = (ast.get_docstring(ast.parse(text)) or "").lower()
    assert re.search(r"over 500 lines|longer than", doc), f"{path}: over 500 lines, no reason"

"""The package's shape, computed from the source: the folders of dydiff/ stack one way, and the math imports
only torch, numpy and dydiff.types."""

import ast
import subprocess
import sys
from collections import defaultdict

from conftest import ROOT

PKG = ROOT / "dydiff"
# bottom to top: a unit may import only units of lower layers (and itself)
LAYERS = [
    {"types", "io", "errors", "progress", "settings"},
    {"envs"},  # the task registry: a dataset is validated against its task
    {"data"},
    {"diffusion", "models", "figures"},
    {"synthesis"},
    {"lightning"},
    {"stage1", "algos"},
    {"checkpoints", "builtin"},
    {"sources", "diagnostics", "report"},
]
MATH = [*sorted((PKG / "diffusion").glob("*.py")), PKG / "synthesis" / "refine.py", PKG / "synthesis" / "filter.py"]
STDLIB_OK = {"__future__", "math", "collections", "collections.abc", "typing", "dataclasses", "functools"}


def unit(path) -> str:
    rel = path.relative_to(PKG)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def imports(path) -> list[str]:
    """Every module named by an import anywhere in the file (lazy imports inside functions too)."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            out += [f"{node.module}.{a.name}" if node.module == "dydiff" else node.module for a in node.names]
    return out


def graph() -> dict[str, set[str]]:
    edges = defaultdict(set)
    for path in PKG.rglob("*.py"):
        if unit(path) == "__init__":
            continue
        for name in imports(path):
            parts = name.split(".")
            if parts[0] == "dydiff" and len(parts) > 1 and parts[1] != unit(path):
                edges[unit(path)].add(parts[1])
    return edges


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state, stack = {}, []

    def visit(u):
        state[u] = "open"
        stack.append(u)
        for v in sorted(edges.get(u, ())):
            if state.get(v) == "open":
                return stack[stack.index(v):] + [v]
            if v not in state and (c := visit(v)):
                return c
        state[u] = "done"
        stack.pop()
        return None

    for u in sorted(edges):
        if u not in state and (c := visit(u)):
            return c
    return None


def test_cycle_finder_finds_a_planted_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_subpackages_import_each_other_without_a_cycle():
    assert find_cycle(graph()) is None, find_cycle(graph())


def test_every_import_runs_down_the_layers():
    layer = {u: i for i, units in enumerate(LAYERS) for u in units}
    found = {unit(p) for p in PKG.rglob("*.py")} - {"__init__"}
    assert found <= set(layer), f"units without a layer: {found - set(layer)}"
    upward = [(u, v) for u, vs in graph().items() for v in vs if layer[v] >= layer[u]]
    assert not upward, f"imports that run up or sideways: {upward}"


def test_math_imports_only_torch_numpy_and_types():
    for path in MATH:
        own = f"dydiff.{path.parent.name}"
        for name in imports(path):
            ok = name.split(".")[0] in ("torch", "numpy") or name in STDLIB_OK or name == "dydiff.types" or \
                name == own or name.startswith(own + ".")
            assert ok, f"{path.relative_to(ROOT)} imports {name}"


def test_math_and_types_load_without_gymnasium_or_lightning():
    code = ("import sys, dydiff.types, dydiff.diffusion.trajectory, dydiff.diffusion.transitions, "
            "dydiff.synthesis.refine, dydiff.synthesis.filter, dydiff.models.ensemble, dydiff.algos.networks, "
            "dydiff.algos.optim; print(sorted(m for m in ('gymnasium', 'lightning', 'mujoco', 'hydra') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr

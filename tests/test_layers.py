"""Layers point down: a package imports only from packages below it, and no modules
import each other in a cycle (lazy imports inside functions included)."""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "hlquant"

LAYERS = {
    "core": 0, "conf": 0, "templates": 0,
    "data": 1, "audit": 1, "features": 1, "portfolio": 1, "venues": 1, "report": 1,
    "bus": 2, "agents": 2, "router": 2,
    "connectors": 3, "risk": 3,
    "hyperliquid": 4,
    "storage": 5, "fakeexchange": 5, "research": 5,
    "config": 6,
    "kernel": 7,
    "backtest": 8, "live": 8,
    "promote": 9,
    "cli": 10, "__init__": 10,
}


def _modules() -> dict[str, Path]:
    return {".".join(f.relative_to(PKG.parent).with_suffix("").parts).removesuffix(".__init__"): f
            for f in PKG.rglob("*.py")}


def imports() -> dict[str, set[str]]:
    """module -> hlquant modules it imports (anywhere in the file); ``from pkg import sub``
    counts as importing the submodule."""
    mods = _modules()
    out: dict[str, set[str]] = {}
    for mod, f in mods.items():
        deps = set()
        for n in ast.walk(ast.parse(f.read_text())):
            if isinstance(n, ast.ImportFrom) and n.module and n.module.startswith("hlquant"):
                subs = {f"{n.module}.{a.name}" for a in n.names} & set(mods)
                deps |= subs or {n.module}
            elif isinstance(n, ast.Import):
                deps |= {a.name for a in n.names if a.name.startswith("hlquant.")}
        out[mod] = deps
    return out


def package(mod: str) -> str:
    parts = mod.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_every_package_has_a_layer():
    pkgs = {package(m) for m in imports()}
    assert pkgs <= set(LAYERS), sorted(pkgs - set(LAYERS))


def test_imports_point_down():
    bad = []
    for mod, deps in imports().items():
        p = package(mod)
        for d in deps:
            q = package(d)
            if q != p and d != "hlquant" and LAYERS[q] >= LAYERS[p]:
                bad.append(f"{mod} (layer {LAYERS[p]}) imports {d} (layer {LAYERS[q]})")
    assert not bad, "\n".join(sorted(bad))


def test_no_import_cycles():
    graph = {m: {d for d in deps if d in imports_cache} for m, deps in imports_cache.items()}
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for d in graph.get(m, ()):
            if state.get(d) == 1:
                cycles.append(" -> ".join([*stack[stack.index(d):], d]))
            elif d not in state:
                visit(d)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)
    assert not cycles, "\n".join(cycles)


imports_cache = imports()

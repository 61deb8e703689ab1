"""What the core install weighs with and without jupyterlab (measured in this environment).

    .venv/bin/python bench/install_size.py

Walks the dependency closure of hlquant's core requirements (pyproject.toml,
markers evaluated here) over the installed distributions, and sums the bytes
of their files (RECORD). Baseline: the same closure with ``jupyterlab`` added
back, as the core install pulled it before it became the ``notebooks`` extra.
Distributions not installed here are listed (and not counted).
"""

from __future__ import annotations

import re
import sys
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def closure(reqs: list[str]) -> tuple[set[str], set[str]]:
    seen, missing = set(), set()
    todo = [Requirement(r) for r in reqs]
    while todo:
        r = todo.pop()
        if r.marker is not None and not r.marker.evaluate({"extra": ""}):
            continue
        n = norm(r.name)
        if n in seen or n in missing:
            continue
        try:
            d = metadata.distribution(r.name)
        except metadata.PackageNotFoundError:
            missing.add(n)
            continue
        seen.add(n)
        for sub in d.requires or []:
            req = Requirement(sub)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req)
        for extra in r.extras:
            for sub in d.requires or []:
                req = Requirement(sub)
                if req.marker is not None and req.marker.evaluate({"extra": extra}):
                    todo.append(req)
    return seen, missing


def size(names: set[str]) -> int:
    total = 0
    for n in names:
        d = metadata.distribution(n)
        for f in d.files or []:
            p = Path(d.locate_file(f))
            if p.is_file():
                total += p.stat().st_size
    return total


def main() -> int:
    core = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    now, miss_now = closure(core)
    before, miss_before = closure([*core, "jupyterlab>=4.2,<5"])
    mb = 1024 * 1024
    a, b = size(now), size(before)
    print(f"core install now:              {len(now):4d} distributions, {a / mb:8.1f} MB")
    print(f"with jupyterlab (as before):   {len(before):4d} distributions, {b / mb:8.1f} MB")
    print(f"jupyterlab's share: {len(before - now)} distributions, {(b - a) / mb:.1f} MB "
          f"({(b - a) / b:.0%} of the old core install); ratio {b / a:.2f}x")
    if miss_now | miss_before:
        print(f"not installed here (not counted): {sorted(miss_now | miss_before)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

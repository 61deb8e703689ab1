"""``hlquant new strategy NAME``: a strategy file and its config from a template."""

from __future__ import annotations

import argparse
import keyword
import re
import string
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

from hlquant.core.errors import ConfigError


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """--help with every option's default, the description as written."""


def parser(prog: str, doc: str) -> argparse.ArgumentParser:
    return argparse.ArgumentParser(prog=prog, description=doc, formatter_class=HelpFormatter)


NEW_DOC = """Start a strategy from a template.

  hlquant new strategy NAME [--dir DIR]
      writes DIR/strategies/NAME.py (an agent class) and DIR/conf/strategy/NAME.yaml (its
      config); run it from DIR with: hlquant backtest --config-dir conf strategy=NAME"""


def new_main(argv: Sequence[str]) -> int:
    p = parser("hlquant new", NEW_DOC)
    p.add_argument("what", choices=["strategy"], help="what to create")
    p.add_argument("name", help="snake_case name: the file, the config option and the agent name")
    p.add_argument("--dir", default=".", help="project folder that gets strategies/ and conf/")
    p.add_argument("--force", action="store_true", help="overwrite existing files")
    args = p.parse_args(list(argv))
    files = new_strategy(args.name, args.dir, force=args.force)
    for f in files:
        print(f"wrote {f}")
    print(f"\nrun it from {Path(args.dir).resolve()}:\n  hlquant backtest --config-dir conf strategy={args.name}")
    return 0


def new_strategy(name: str, folder: str | Path = ".", force: bool = False) -> list[Path]:
    """Write ``strategies/<name>.py`` and ``conf/strategy/<name>.yaml`` under ``folder``."""
    if not re.fullmatch(r"[a-z][a-z0-9_]*", name) or keyword.iskeyword(name):
        raise ConfigError(f"strategy name {name!r}: use snake_case letters, digits and _ (e.g. my_rsi)")
    cls = "".join(part.capitalize() for part in name.split("_"))
    root = Path(folder).expanduser()
    targets = {root / "strategies" / f"{name}.py": "strategy.py.tmpl",
               root / "conf" / "strategy" / f"{name}.yaml": "strategy.yaml.tmpl"}
    existing = [str(t) for t in targets if t.exists()]
    if existing and not force:
        raise ConfigError(f"{', '.join(existing)} already exist(s); pass --force to overwrite")
    for target, tmpl in targets.items():
        text = resources.files("hlquant.templates").joinpath(tmpl).read_text(encoding="utf-8")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(string.Template(text).safe_substitute(name=name, cls=cls), encoding="utf-8")
    return list(targets)

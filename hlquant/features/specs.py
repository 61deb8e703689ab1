"""Which features a set of agents needs: the union of their declared specs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def resolve_feature_specs(agents: Sequence[Any]) -> tuple[list[dict], dict[str, dict[str, str]]]:
    """Union of the agents' feature specs. Two agents declaring the same name with
    the same spec share one feature; different specs under one name are kept apart
    as ``<agent>.<name>`` and each agent reads its own through an alias."""
    by_name: dict[str, list[tuple[str, dict]]] = {}
    for a in agents:
        for spec in a.feature_specs():
            by_name.setdefault(spec["name"], []).append((a.name, spec))
    specs: list[dict] = []
    aliases: dict[str, dict[str, str]] = {a.name: {} for a in agents}
    for name, decls in by_name.items():
        distinct = {repr(sorted(s.items())) for _, s in decls}
        if len(distinct) == 1:
            specs.append(decls[0][1])
            continue
        seen: dict[str, str] = {}
        for agent, spec in decls:
            key = repr(sorted(spec.items()))
            glob = seen.setdefault(key, f"{agent}.{name}")
            if glob == f"{agent}.{name}":
                specs.append({**spec, "name": glob})
            aliases[agent][name] = glob
    return specs, aliases

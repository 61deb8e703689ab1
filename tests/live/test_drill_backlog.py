"""The drill's "every stream drained" reads delivery from entry ids, not Redis' lag."""

from __future__ import annotations

import uuid

from hlquant.live.drill import Drill


def test_backlog_ignores_a_stale_lag_and_sees_real_work(redis_ok, tmp_path):
    ns = f"bl{uuid.uuid4().hex[:8]}"
    drill = Drill([], tmp_path, ns, "redis://127.0.0.1:6379/13", [], ["BTC"])
    r, key = drill.r, f"{ns}:Trade:{{BTC}}"
    try:
        r.xgroup_create(key, "risk", id="0", mkstream=True)
        ids = [r.xadd(key, {"v": i}) for i in range(50)]
        assert drill.backlog() == {f"{key}/risk": 50}  # nothing read yet
        for _, msgs in r.xreadgroup("risk", "c", {key: ">"}, count=100):
            r.xack(key, "risk", *[m[0] for m in msgs[:-1]])
        assert drill.backlog() == {f"{key}/risk": 1}  # one read, not acknowledged
        r.xack(key, "risk", ids[-1])
        # what the 10-minute soak met after a Redis restart: everything delivered and
        # acknowledged, yet Redis' entries-read counter is behind, so its lag says 40
        r.execute_command("XGROUP", "SETID", key, "risk", ids[-1], "ENTRIESREAD", 10)
        assert r.xinfo_groups(key)[0]["lag"] == 40
        assert drill.backlog() == {} and drill.idle()
        r.xadd(key, {"v": "late"})
        assert drill.backlog() == {f"{key}/risk": 1}
    finally:
        drill.cleanup()

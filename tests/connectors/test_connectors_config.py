"""The ``connectors`` config group: a run's data sources from a list in the config."""

from __future__ import annotations

import pytest

from hlquant.agents.base import Agent, AgentConfig
from hlquant.config.compose import load_config
from hlquant.config.connectors import (
    ConnectorSpec,
    build_connectors,
    check_signals,
    parse_connectors,
)
from hlquant.config.spec import KernelSpec
from hlquant.connectors.base import SignalConnector
from hlquant.connectors.file import FileConnector
from hlquant.connectors.synthetic import SyntheticSentimentConnector
from hlquant.core.errors import ConfigError
from hlquant.data.series import SignalSeries


class Echo(SignalConnector):
    """A user's own connector type, named by import path in the config."""

    def __init__(self, level: float = 1.0) -> None:
        super().__init__()
        self.level = level

    def connect(self) -> None:
        """Nothing to open."""

    def normalize(self, raw):
        return []

    def history(self, market):
        return SignalSeries.empty()


def test_default_is_the_market_alone():
    spec = KernelSpec.from_config(load_config([]))
    assert spec.connectors == (ConnectorSpec("market", "market"),)


def test_a_list_of_connectors_each_with_its_parameters(tmp_path):
    cfg = load_config(["connectors=[market,sentiment_file,synthetic_sentiment,hyperliquid_ctx]",
                       f"connectors.sentiment_file.path={tmp_path / 's.csv'}", "connectors.sentiment.corr=0.5",
                       "data=files", f"data.path={tmp_path}"])
    specs = {s.name: s for s in KernelSpec.from_config(cfg).connectors}
    assert [s.type for s in specs.values()] == ["market", "file", "synthetic_sentiment", "hyperliquid_ctx"]
    assert specs["sentiment"].params["corr"] == 0.5
    assert specs["hyperliquid_ctx"].params["path"] == str(tmp_path)  # defaults to data.path
    built = build_connectors(list(specs.values()), "sim", ["BTC"])
    assert isinstance(built["sentiment_file"], FileConnector) and built["sentiment"].corr == 0.5


@pytest.mark.parametrize("node, message", [
    ({"m": {"type": "market"}, "s": {"type": "file", "path": "x", "colour": 1}},
     r"connectors.s: unknown key\(s\) \['colour'\]"),
    ({"m": {"type": "market"}, "s": {"type": "file"}}, "connectors.s.path is required"),
    ({"m": {"type": "market"}, "s": {"type": "file", "path": "???"}}, "connectors.s.path is required"),
    ({"s": {"type": "file", "path": "x"}}, "exactly one connector of type market"),
    ({"a": {"type": "market"}, "b": {"type": "market"}}, "exactly one connector of type market"),
    ({"m": {"type": "market"}, "s": {"type": "rss"}}, "connectors.s.type: unknown type 'rss'"),
    ({"m": {"type": "market", "url": "x"}}, "a market connector has no keys"),
    ({"m": {"type": "market"}, "s": {"path": "x"}}, "connectors.s needs a type"),
    ({"m": {"type": "market"}, "s": {"type": "hlquant.core.events:Signal"}}, "not a SignalConnector"),
])
def test_bad_entries_are_errors_naming_the_key(node, message):
    with pytest.raises(ConfigError, match=message):
        parse_connectors(node)


def test_your_own_connector_by_import_path():
    specs = parse_connectors({"m": {"type": "market"},
                              "mine": {"type": "tests.connectors.test_connectors_config:Echo", "level": 3}})
    c = build_connectors(specs, "sim", ["BTC"])["mine"]
    assert isinstance(c, Echo) and c.level == 3 and c.name == "mine"


def test_a_connector_must_serve_the_mode():
    http = parse_connectors({"m": {"type": "market"},
                             "api": {"type": "http", "url": "https://x.invalid/a", "fields": {"v": "v"}}})
    with pytest.raises(ConfigError, match="connectors.api .* has no history"):
        build_connectors(http, "sim", ["BTC"])
    assert build_connectors(http, "paper", ["BTC"])["api"].signal_names() == {"v"}
    synth = parse_connectors({"m": {"type": "market"}, "s": {"type": "synthetic_sentiment"}})
    with pytest.raises(ConfigError, match="connectors.s .* has no live stream"):
        build_connectors(synth, "paper", ["BTC"])
    assert isinstance(build_connectors(synth, "sim", ["BTC"])["s"], SyntheticSentimentConnector)


class Reader(Agent):
    signals = ("sentiment",)

    def decide(self, ctx):
        return None


def test_an_agent_reading_a_series_no_connector_provides_is_refused():
    a = Reader(AgentConfig("reader", ("BTC",)))
    with pytest.raises(ConfigError, match=r"agent reader reads signal\(s\) \['sentiment'\]"):
        check_signals([a], {"api": {"fear_greed"}})
    check_signals([a], {"s": {"sentiment"}})
    check_signals([a], {"file": None})  # a file read without `columns`: known only once read

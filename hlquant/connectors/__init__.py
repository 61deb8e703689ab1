"""Connectors: data sources that normalize raw messages into core events.

Market history (``ReplayConnector``) and data beyond the exchange
(``SignalConnector``: ``file``, ``http``, ``synthetic``; the exchange's asset
contexts in ``hlquant.hyperliquid.context``), chosen by the ``connectors`` config
group (docs/connectors.md)."""

from hlquant.connectors.base import Connector, SignalConnector, merge_events, topic_for
from hlquant.connectors.replay import ReplayConnector

__all__ = ["Connector", "ReplayConnector", "SignalConnector", "merge_events", "topic_for"]

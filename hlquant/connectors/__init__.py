"""Connectors: data sources that normalize raw messages into core events."""

from hlquant.connectors.base import Connector, topic_for
from hlquant.connectors.replay import ReplayConnector

__all__ = ["Connector", "ReplayConnector", "topic_for"]

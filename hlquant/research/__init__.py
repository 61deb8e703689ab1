"""Research helpers: the vectorized path (vectorbt) beside the event-driven engine."""

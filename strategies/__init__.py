"""Example strategies. Each module is small and self-contained: copy one to start.
A strategy imports only ``hlquant.agents`` (the agent API), never a backend."""

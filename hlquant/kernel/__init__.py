"""The kernel: components built in one place and one path for every market event.

``build_kernel(spec, role)`` constructs the components of a process from a
``KernelSpec``; ``MarketHandler`` applies each market event to them. The
backtest, paper and live sessions, and every role process of the
multi-process topology use both (docs/events.md walks the path).
"""

from hlquant.kernel.components import Kernel, Role, build_kernel
from hlquant.kernel.handler import MarketHandler

__all__ = ["Kernel", "MarketHandler", "Role", "build_kernel"]

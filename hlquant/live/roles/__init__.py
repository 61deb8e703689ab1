"""The role processes of ``live.topology=processes``, one module per role.

    hlquant component ingest             the exchange's market data -> <Kind>:{SYM} streams
    hlquant component features [NAME]    market streams -> features in Redis -> FeaturesReady:{SYM}
    hlquant component agent NAME         FeaturesReady:{SYM} -> the agent -> Intent:{SYM}
    hlquant component risk               Intent/Exec/market streams + user fills -> risk -> order streams
    hlquant component router NAME        order streams (consumer group) -> signed orders -> Exec:{SYM}

Each builds its components with ``hlquant.kernel.build_kernel`` and applies
market events through the kernel's ``MarketHandler``: the same code as the
backtest and the single-process session, with Redis behind the state.
"""

"""crm：房地产开发商的客户关系管理数据平台。

Plugins implement hooks with the `hookimpl` marker exported here. It is made on first use
(PEP 562): `crm`'s console entry point (crm.launch) imports this package before it knows
whether it will hand the command to a running desk server, and pluggy would cost it a
tenth of its start-up.
"""

__version__ = "0.1.0"

__all__ = ["__version__", "hookimpl"]


def __getattr__(name: str):
    if name == "hookimpl":
        import pluggy

        marker = globals()["hookimpl"] = pluggy.HookimplMarker("crm")
        return marker
    raise AttributeError(f"module 'crm' has no attribute {name!r}")

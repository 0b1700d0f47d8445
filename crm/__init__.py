"""crm：房地产开发商的客户关系管理数据平台。

Plugins implement hooks with the `hookimpl` marker exported here.
"""

import pluggy

__version__ = "0.1.0"

hookimpl = pluggy.HookimplMarker("crm")

__all__ = ["__version__", "hookimpl"]

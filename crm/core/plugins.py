"""Plugin manager factory: built-ins from the caller's tuple, then the `crm` entry points.

The core receives the built-in module names from the CLI and so never names a plugin itself.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterable

import pluggy

from crm.core import hookspecs

ENTRY_POINT_GROUP = "crm"


def disabled_plugins() -> set[str]:
    """Names listed in CRM_DISABLE_PLUGINS (comma or space separated)."""
    raw = os.environ.get("CRM_DISABLE_PLUGINS", "")
    return {name.strip() for name in raw.replace(",", " ").split() if name.strip()}


def make_plugin_manager(builtins: Iterable[str] = ()) -> pluggy.PluginManager:
    """Register built-in plugin modules (dotted names; the last part is the plugin's name)
    and third-party plugins, skipping the disabled ones, then check every hook exists."""
    pm = pluggy.PluginManager("crm")
    pm.add_hookspecs(hookspecs)
    disabled = disabled_plugins()
    for name in disabled:
        pm.set_blocked(name)
    for dotted in builtins:
        name = dotted.rsplit(".", 1)[-1]
        if name not in disabled:
            pm.register(importlib.import_module(dotted), name=name)
    pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
    pm.check_pending()
    return pm


def describe_plugins(pm: pluggy.PluginManager) -> list[dict]:
    """Each loaded plugin with the hooks it implements (for `crm plugins`)."""
    rows = []
    for plugin in pm.get_plugins():
        name = pm.get_name(plugin) or repr(plugin)
        hooks = sorted(caller.name for caller in pm.get_hookcallers(plugin) or [])
        dist = next((d for p, d in pm.list_plugin_distinfo() if p is plugin), None)
        rows.append(
            {
                "name": name,
                "source": f"{dist.project_name} {dist.version}" if dist else "内置",
                "hooks": ", ".join(hooks),
            }
        )
    return sorted(rows, key=lambda row: row["name"])

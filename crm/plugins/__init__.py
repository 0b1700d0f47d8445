"""The built-in subsystems, each an ordinary plugin registered from this tuple."""

BUILTIN_PLUGINS = (
    "crm.plugins.analysis",
    "crm.plugins.service",
    "crm.plugins.satisfaction",
    "crm.plugins.profitability",
    "crm.plugins.coordination",
    "crm.plugins.campaigns",
)

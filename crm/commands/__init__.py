"""The core's click commands. Each module parses options, calls the library, renders.

The shared pieces (the App, `--format`, the renderer) live in crm.core.cliutil so plugins'
commands use the very same ones.
"""

from crm.core.cliutil import FORMAT_CHOICES, emit, format_option, get_app

__all__ = ["FORMAT_CHOICES", "emit", "format_option", "get_app"]

"""Garbage collection while a `crm` process starts.

Starting a command imports SQLAlchemy, declares the models and configures their mappers: several
hundred thousand objects, none of them garbage, which the cyclic collector would walk again and
again as they pile up (about a tenth of a short command's CPU time on the 2-core machine). The
console entry point (`crm.cli.main`) therefore defers collection; the App resumes it when it
first makes sessions, freezing what start-up made: those objects live as long as the process
and are left out of every later collection. Library use of the App is not affected: only a
process that called `defer_collection` has anything to resume.
"""

from __future__ import annotations

import gc

_deferred = False


def defer_collection() -> None:
    """Collect no cycles until `resume_collection`."""
    global _deferred
    if gc.isenabled():
        gc.disable()
        _deferred = True


def resume_collection() -> None:
    """Collect again, with the objects made so far frozen (no-op unless deferred here)."""
    global _deferred
    if _deferred:
        _deferred = False
        gc.freeze()
        gc.enable()

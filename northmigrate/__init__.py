"""northmigrate: queue-driven data migration on AWS that proves nothing was lost.

The plugin API (``Migration``, ``MigrationContext``, ``PermanentError``, ``SetupResult``, and
the failure kinds a handler may raise, ``Throttled`` and ``TargetUnavailable``) is
imported on first use, so that the command starts light and a Ctrl-C while it starts is an
ordinary interruption (exit 130), not a traceback from the middle of an import.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from northmigrate.plugin import (
        Migration,
        MigrationContext,
        PermanentError,
        SetupResult,
        TargetUnavailable,
        Throttled,
    )

__version__ = "0.1.0"
__all__ = [
    "Migration",
    "MigrationContext",
    "PermanentError",
    "SetupResult",
    "TargetUnavailable",
    "Throttled",
    "__version__",
]
_PLUGIN_API = set(__all__) - {"__version__"}


def __getattr__(name: str) -> Any:
    if name in _PLUGIN_API:
        from northmigrate import plugin

        return getattr(plugin, name)
    raise AttributeError(f"module 'northmigrate' has no attribute {name!r}")

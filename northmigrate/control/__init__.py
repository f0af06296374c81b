"""The operator's controls over a migration: provision, doctor, status and reconcile.

May import: ``records``, ``sources``, ``aws``, ``plugin``, ``redact`` and the base modules;
never the consumers, the enqueue run or the DLQ tools (``dlq`` asks ``reconcile``, not the
other way round).
"""

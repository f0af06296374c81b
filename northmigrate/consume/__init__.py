"""Records consumed: the one per-record path (``processing``), retries and dead letters
(``resend``), backoff, heartbeat, events, metrics, the guard and the tap, and the two runtimes
that drive them: the local worker (``worker/``) and Lambda (``lambda_handler``).

May import: ``records``, ``aws``, ``plugin``, ``redact`` and the base modules; never a source,
the enqueue run, the DLQ tools or the control room.
"""

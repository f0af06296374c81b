"""The one SQS layer: what every northmigrate path that talks to SQS shares.

- :mod:`~northmigrate.aws.sqs.message`: a received message in either shape (``ReceiveMessage``
  or a Lambda event record), and how SQS counts and restricts message attributes;
- :mod:`~northmigrate.aws.sqs.queue`: queue names, ARNs, depths, size limits, FIFO fields;
- :mod:`~northmigrate.aws.sqs.retry`: one retry policy per kind of call (tenacity);
- :mod:`~northmigrate.aws.sqs.batch`: the batch calls (send, delete, change visibility), with
  one result type (accepted / refused / unconfirmed) and the one place that knows a receipt
  handle is gone;
- :mod:`~northmigrate.aws.sqs.reader`: reading a queue without consuming it (``dlq inspect``,
  ``reconcile``, ``dlq redrive``'s reads).

Above it: the worker, the Lambda handler and the per-record path (``processing``), the
enqueue sender, the DLQ tools. Nothing here knows about records or migrations.
"""

"""The AWS plumbing under every station: the client factory, error translation, the embedded
endpoint, the migration's queues, the in-flight limit and the one SQS layer (``sqs/``).

May import: ``errors``, ``config``. Nothing here knows a record, a plugin or a station above.
The package's face re-exports the client factory (``from northmigrate.aws import AwsClients,
error_code``), the path plugins have always used.
"""

from northmigrate.aws.clients import (
    AWS_EXCEPTIONS,
    DEFAULT_REGION,
    LOCAL_CREDENTIALS,
    AwsClients,
    aws_errors,
    configured_endpoint,
    error_code,
    is_fatal,
    is_loopback,
    share_service_models,
    translate,
)

__all__ = [
    "AWS_EXCEPTIONS",
    "DEFAULT_REGION",
    "LOCAL_CREDENTIALS",
    "AwsClients",
    "aws_errors",
    "configured_endpoint",
    "error_code",
    "is_fatal",
    "is_loopback",
    "share_service_models",
    "translate",
]

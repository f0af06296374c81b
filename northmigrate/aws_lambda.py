"""The deployed handler path, ``northmigrate.aws_lambda.handler``: functions and templates
made before the handler moved to :mod:`northmigrate.consume.lambda_handler` keep running."""

from northmigrate.consume.lambda_handler import handler

__all__ = ["handler"]

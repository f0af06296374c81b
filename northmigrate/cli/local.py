"""``local``: the embedded AWS endpoint, in the foreground until Ctrl-C."""

from __future__ import annotations

import threading

import typer

from northmigrate.cli.output import say
from northmigrate.local import DEFAULT_PORT, EmbeddedEndpoint


def local(
    port: int = typer.Option(
        DEFAULT_PORT, "--port", "-p", help="Port to listen on (0: any free port)."
    ),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
) -> None:
    """Run the embedded AWS endpoint (SQS, DynamoDB, S3, …) in the foreground until Ctrl-C.

    Point a config at it with aws.endpoint_url (northmigrate init writes one that does). It
    keeps its data in memory: stopping it forgets every queue and table.

    Examples:
      northmigrate local
      northmigrate local --port 0  # any free port
    """
    endpoint = EmbeddedEndpoint(host=host, port=port)
    url = endpoint.start()
    print(url, flush=True)
    say("embedded AWS endpoint listening on {} (Ctrl-C to stop)", url)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        say("stopped")
    finally:
        endpoint.stop()


def register(app: typer.Typer) -> None:
    app.command()(local)

"""``local``: the embedded AWS endpoint, in the foreground until Ctrl-C or SIGTERM."""

from __future__ import annotations

import typer

from northmigrate.aws.local import DEFAULT_PORT, EMBEDDED, EmbeddedEndpoint, listener
from northmigrate.cli.output import say
from northmigrate.cli.signals import graceful_stop


def local(
    port: int = typer.Option(
        DEFAULT_PORT, "--port", "-p", help="Port to listen on (0: any free port)."
    ),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
) -> None:
    """Run the embedded AWS endpoint (SQS, DynamoDB, S3, …) in the foreground until Ctrl-C
    or SIGTERM.

    Point a config at it with aws.endpoint_url (northmigrate init writes one that does). It
    keeps its data in memory: stopping it forgets every queue and table. When an embedded
    endpoint already listens on the port, it says so and exits 0; when another program
    does, it exits 2 (start it on another port, and point the config there).

    Examples:
      northmigrate local
      northmigrate local --port 0  # any free port
    """
    if port and listener(host, port) == EMBEDDED:  # one is running already: nothing to do
        say("an embedded AWS endpoint is already listening on http://{}:{}", host, port)
        return
    endpoint = EmbeddedEndpoint(host=host, port=port)
    # Ctrl-C or SIGTERM (a script's or a container's stop) shuts it down; a second Ctrl-C
    # aborts at once (130).
    with graceful_stop("shutting the endpoint down") as stop:
        url = endpoint.start()
        try:
            print(url, flush=True)
            say("embedded AWS endpoint listening on {} (Ctrl-C to stop)", url)
            while not stop.wait(0.5):
                pass
        finally:
            endpoint.stop()
    say("stopped")


def register(app: typer.Typer) -> None:
    app.command()(local)

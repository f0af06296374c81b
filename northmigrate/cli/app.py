"""The ``northmigrate`` command: global options, sub-commands, and the one place errors
become ``Error: …`` lines and exit codes."""

from __future__ import annotations

import functools
import logging
import sys
import traceback

import typer

from northmigrate import __version__
from northmigrate.cli import (
    alarm,
    cutover,
    demo,
    deploy,
    destroy,
    dlq,
    doctor,
    enqueue,
    init,
    local,
    provision,
    reconcile,
    sample,
    status,
    tap,
    validate,
    worker,
)
from northmigrate.cli.flags import attach
from northmigrate.cli.helptext import tidy
from northmigrate.cli.output import OutputFormat, PlainFormatter, plain
from northmigrate.cli.state import State
from northmigrate.errors import (
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    NorthmigrateError,
    plain_words,
)

app = typer.Typer(
    name="northmigrate",
    help=(
        "Queue-driven data migration on AWS: validate records, put each on SQS, migrate one "
        "record at a time, collect failures in a dead-letter queue, redrive them once the fix "
        "ships, and prove that nothing was lost.\n\n"
        "Global flags go before or after the command: --output, --region, --profile, "
        "--endpoint-url. A flag beats the AWS environment variables (AWS_REGION, AWS_PROFILE, "
        "AWS_ENDPOINT_URL), which beat the config. Short flags: -n how many, -j how many at "
        "once, -o output, -c config.\n\n"
        "Examples:\n"
        "  northmigrate demo\n"
        "  northmigrate init --plugin accounts_v2\n"
        "  northmigrate --output json status --once"
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"northmigrate {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    config: str | None = typer.Option(
        None,
        "--config",
        "-c",
        metavar="PATH",
        help="Config file (else $NORTHMIGRATE_CONFIG, else ./northmigrate.toml).",
    ),
    output: OutputFormat | None = typer.Option(
        None,
        "--output",
        "-o",
        case_sensitive=False,
        metavar="FORMAT",
        help="table or json, for every command (a command's own --output wins).",
    ),
    region: str | None = typer.Option(
        None, "--region", metavar="REGION", help="AWS region; beats AWS_REGION and aws.region."
    ),
    profile: str | None = typer.Option(
        None, "--profile", metavar="NAME", help="AWS profile; beats AWS_PROFILE and aws.profile."
    ),
    endpoint_url: str | None = typer.Option(
        None,
        "--endpoint-url",
        metavar="URL",
        help="AWS endpoint (an emulator); beats AWS_ENDPOINT_URL and aws.endpoint_url.",
    ),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks and debug logs."),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    ctx.obj = State(
        config_path=config,
        debug=debug,
        output=output.value if output else None,
        region=region,
        profile=profile,
        endpoint_url=endpoint_url,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(PlainFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING, handlers=[handler])
    # AWS wire logs hold message bodies, that is records with their sensitive fields: even
    # --debug keeps them out (tracebacks and northmigrate's own debug logs are enough).
    for name in ("botocore", "boto3", "urllib3", "s3transfer"):
        logging.getLogger(name).setLevel(logging.WARNING)


# One module per command, named after it (validate and enqueue share cli/records.py); the
# order here is the order of --help.
init.register(app)
local.register(app)
provision.register(app)
sample.register(app)
validate.register(app)
enqueue.register(app)
doctor.register(app)
worker.register(app)
deploy.register(app)
destroy.register(app)
tap.register(app)
cutover.register(app)
dlq.register(app)
status.register(app)
alarm.register(app)
reconcile.register(app)
demo.register(app)


@functools.cache
def build_command() -> typer.core.TyperGroup:
    """The click command of ``app``, with the global flags on every sub-command and help
    pages that read well at any width (``helptext.tidy``). Built once per process (about
    25 ms: typer reads the signature of every command); click makes a fresh context for
    each run, so one command serves every run of a process."""
    command = typer.main.get_command(app)
    attach(command, command)
    tidy(command)
    return command  # type: ignore[return-value]


def _debug_requested(argv: list[str]) -> bool:
    return "--debug" in argv


def _fail(message: str, code: int, debug: bool) -> int:
    if debug:
        sys.stderr.write(plain(traceback.format_exc(), newlines=True))
    sys.stderr.write(f"Error: {plain(message)}\n")
    sys.stderr.flush()
    return code


def _names(exc: BaseException) -> set[str]:
    """The class names of an exception's MRO: typer ships its own fork of click, so its
    exceptions are matched by name, whichever of the two raised them."""
    return {cls.__name__ for cls in type(exc).__mro__}


def run(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit code (``main`` exits with it)."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = _debug_requested(args)
    command = build_command()
    try:
        result = command.main(args=args, prog_name="northmigrate", standalone_mode=False)
    except NorthmigrateError as exc:
        return _fail(str(exc), exc.exit_code, debug)
    except KeyboardInterrupt:
        return _fail("interrupted", EXIT_INTERRUPTED, False)
    except BrokenPipeError:
        return 0
    except Exception as exc:
        names = _names(exc)
        ctx = getattr(exc, "ctx", None)
        if "NoArgsIsHelpError" in names:
            sys.stdout.write((ctx.get_help() if ctx else "") + "\n")
            return 0
        if "UsageError" in names:
            path = ctx.command_path if ctx else "northmigrate"
            text = plain_words(exc.format_message())  # type: ignore[attr-defined]
            return _fail(f"{text} (see: {path} --help)", EXIT_USAGE, debug)
        if "Exit" in names:
            return int(getattr(exc, "exit_code", 0))
        if "Abort" in names:
            return _fail("interrupted", EXIT_INTERRUPTED, False)
        if "ClickException" in names:
            return _fail(exc.format_message(), int(getattr(exc, "exit_code", 1)), debug)  # type: ignore[attr-defined]
        # A bug: still one line. Its message may quote a record (a sensitive value): it and
        # the traceback are shown with --debug only.
        detail = f": {exc}" if debug else ""
        return _fail(
            f"unexpected {type(exc).__name__}{detail} (run with --debug for the details)",
            EXIT_INTERNAL,
            debug,
        )
    return int(result) if isinstance(result, int) else 0


def main() -> None:
    sys.exit(run())

"""Sources that live in AWS: ``dynamodb://TABLE`` and ``s3://BUCKET/KEY`` (or ``/PREFIX/``).

``open_remote`` takes the AWS clients and the options of the scan (table sources only):

- ``segments`` (int), ``consistent`` (bool), ``filters`` (list of ``--filter`` texts),
  ``filter_values`` (JSON text), ``page_size`` (Scan ``Limit``; also ``?page_size=N`` on the
  URI), ``sensitive`` (field names whose key values are masked in positions);
- ``state_file`` (Path: record the scan's progress there), ``resume`` (start from it),
  ``save_state`` (False: read a state, write none), ``queue_name`` (recorded in the state).

An option that does not apply to the source (a table option for S3) is an InputError.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from northmigrate.sources.base import Source, SourceError

TABLE_OPTIONS = {
    "segments": "--segments",
    "consistent": "--consistent",
    "filters": "--filter",
    "filter_values": "--filter-values",
    "page_size": "page_size",
    "resume": "--resume",
}
_ACCEPTED = {*TABLE_OPTIONS, "state_file", "save_state", "queue_name", "sensitive", "sleep", "stop"}


def _table_uri(name: str) -> tuple[str, dict[str, str]]:
    rest = name[len("dynamodb://") :]
    table, _, query = rest.partition("?")
    if not table or "/" in table:
        raise SourceError(f"{name}: expected dynamodb://TABLE", hint="a table name, no path")
    try:
        params = dict(parse_qsl(query, strict_parsing=True)) if query else {}
    except ValueError as exc:
        raise SourceError(f"{name}: cannot read the query ({exc})") from exc
    unknown = set(params) - {"page_size"}
    if unknown:
        raise SourceError(f"{name}: unknown parameter {sorted(unknown)[0]!r}", hint="page_size=N")
    return table, params


def open_remote(name: str, *, clients: Any = None, **options: Any) -> Source:
    """Open an ``s3://`` or ``dynamodb://`` source (nothing is read until iterated)."""
    unknown = set(options) - _ACCEPTED
    if unknown:
        raise TypeError(f"open_remote() got unexpected options: {sorted(unknown)}")
    if clients is None:
        raise SourceError(f"{name}: reading from AWS needs the AWS clients (clients=...)")
    if name.startswith("s3://"):
        from northmigrate.sources import s3

        given = [flag for key, flag in TABLE_OPTIONS.items() if options.get(key)]
        if given:
            raise SourceError(f"{given[0]} applies to dynamodb:// sources, not to {name}")
        kwargs = {"sleep": options["sleep"]} if options.get("sleep") else {}
        return s3.open_s3(clients, name, stop=options.get("stop"), **kwargs)
    from northmigrate.sources import dynamodb

    table, params = _table_uri(name)
    if "page_size" in params:
        try:
            options["page_size"] = int(params["page_size"])
        except ValueError as exc:
            raise SourceError(f"{name}: page_size must be a whole number") from exc
    options.pop("stop", None)  # a scan is read page by page: the caller checks between items
    options.setdefault("filters", ())
    options["filters"] = tuple(options["filters"] or ())
    return dynamodb.open_table(clients, table, **options)

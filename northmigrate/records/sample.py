"""Realistic fake onboarding records (for the demo, tests and benchmarks), seeded and fast.

Every value is fake: tax ids use the 900-999 area numbers that are never issued, EINs the
unassigned prefix 00 is avoided but numbers are random, e-mails use example domains.
A share of the lines can be made invalid (each in one of several realistic ways) or
duplicated; ineligible records (draft, in review, rejected, withdrawn) come naturally from
the status mix.
"""

from __future__ import annotations

import csv
import io
import json
import random
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

Format = Literal["jsonl", "json", "csv"]

FIRST = [
    "Ava",
    "Liam",
    "Noah",
    "Mia",
    "Zoe",
    "Omar",
    "Priya",
    "Chen",
    "Sofia",
    "Mateo",
    "Amara",
    "Yuki",
    "Lucas",
    "Leila",
    "Ethan",
    "Ines",
    "Kofi",
    "Hana",
    "Diego",
    "Nora",
]
LAST = [
    "Nguyen",
    "Smith",
    "Okafor",
    "Garcia",
    "Tremblay",
    "Patel",
    "Kim",
    "Roy",
    "Cohen",
    "Silva",
    "Martin",
    "Singh",
    "Brown",
    "Lee",
    "Haddad",
    "Fischer",
    "Moreau",
    "Ali",
]
WORDS = [
    "Maple",
    "Harbor",
    "North",
    "Cedar",
    "Bright",
    "Summit",
    "River",
    "Pixel",
    "Golden",
    "Atlas",
    "Lumen",
    "Copper",
    "Prairie",
    "Signal",
    "Orchard",
    "Beacon",
]
KINDS = [
    "Bakery",
    "Studio",
    "Labs",
    "Logistics",
    "Consulting",
    "Builders",
    "Cafe",
    "Design",
    "Fitness",
    "Supply",
    "Analytics",
    "Outfitters",
]
INDUSTRIES = [
    "food_service",
    "software",
    "construction",
    "retail",
    "consulting",
    "health",
    "creative",
    "transport",
    "fitness",
    "wholesale",
]
PLACES = [
    ("Toronto", "ON", "CA", "M5V 2T6"),
    ("Vancouver", "BC", "CA", "V6B 1A1"),
    ("Montreal", "QC", "CA", "H2X 1Y4"),
    ("Calgary", "AB", "CA", "T2P 1J9"),
    ("New York", "NY", "US", "10001"),
    ("Austin", "TX", "US", "73301"),
    ("Denver", "CO", "US", "80202"),
    ("Seattle", "WA", "US", "98101"),
    ("Miami", "FL", "US", "33101"),
    ("Chicago", "IL", "US", "60601"),
]
STATUSES = [
    ("submitted", 45),
    ("approved", 33),
    ("in_review", 9),
    ("draft", 7),
    ("rejected", 4),
    ("withdrawn", 2),
]
TYPES = ["sole_proprietorship", "llc", "corporation", "partnership", "nonprofit"]
PRODUCTS = ["checking", "debit_card", "invoicing", "envelopes"]


class SampleGenerator:
    def __init__(self, seed: int = 7) -> None:
        self.rng = random.Random(seed)
        self._statuses = [s for s, _ in STATUSES]
        self._weights = [w for _, w in STATUSES]

    def record(self, n: int) -> dict[str, Any]:
        r = self.rng
        submitted = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=r.randrange(300 * 86_400))
        city, region, country, postal = r.choice(PLACES)
        owners_n = r.choice([1, 1, 1, 2, 2, 3])
        shares = [round(100 / owners_n - 0.005, 2)] * owners_n
        owners = []
        for _ in range(owners_n):
            first, last = r.choice(FIRST), r.choice(LAST)
            owners.append(
                {
                    "first_name": first,
                    "last_name": last,
                    "date_of_birth": (
                        date(1950, 1, 1) + timedelta(days=r.randrange(18_000))
                    ).isoformat(),
                    "tax_id": f"9{r.randrange(10, 100)}-{r.randrange(10, 100)}-"
                    f"{r.randrange(1000, 10000)}",
                    "ownership_pct": f"{shares.pop():.2f}",
                    "email": f"{first.lower()}.{last.lower()}{r.randrange(100)}@example.com",
                    "phone": f"+1 {r.randrange(200, 999)}-{r.randrange(200, 999)}-"
                    f"{r.randrange(1000, 9999)}",
                }
            )
        name = f"{r.choice(WORDS)} {r.choice(KINDS)}"
        business: dict[str, Any] = {
            "legal_name": f"{name} Inc.",
            "business_type": r.choice(TYPES),
            "ein": f"{r.randrange(10, 99)}-{r.randrange(1_000_000, 9_999_999)}",
            "incorporated_on": (date(1995, 1, 1) + timedelta(days=r.randrange(10_500))).isoformat(),
            "industry": r.choice(INDUSTRIES),
            "address": {
                "line1": f"{r.randrange(1, 9999)} {r.choice(WORDS)} St",
                "city": city,
                "region": region,
                "postal_code": postal,
                "country": country,
            },
        }
        if r.random() < 0.3:
            business["dba"] = name
        record: dict[str, Any] = {
            "application_id": f"APP-{n:07d}",
            "customer_id": f"CUS-{r.getrandbits(32):08X}",
            "status": r.choices(self._statuses, self._weights)[0],
            "submitted_at": submitted.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "business": business,
            "owners": owners,
            "contact": {
                "email": f"hello@{name.split()[0].lower()}.example.com",
                "phone": f"+1 {r.randrange(200, 999)}-555-{r.randrange(1000, 9999)}",
            },
            "requested_products": sorted(r.sample(PRODUCTS, r.randrange(1, 4))),
            "annual_revenue": f"{r.randrange(10_000, 5_000_000)}.00",
        }
        return record

    def corrupt(self, record: dict[str, Any]) -> str | dict[str, Any]:
        """One of several realistic ways a record of the old system is broken."""
        r = self.rng
        way = r.randrange(6)
        if way == 0:
            return json.dumps(record)[: r.randrange(10, 60)]  # a truncated line
        broken: dict[str, Any] = json.loads(json.dumps(record))
        if way == 1:
            del broken["business"]["ein"]
        elif way == 2:
            broken["owners"][0]["date_of_birth"] = "31/02/1980"
        elif way == 3:
            broken["owners"][0]["tax_id"] = "123456789"
        elif way == 4:
            broken["status"] = "pending_docs"
        else:
            broken["submitted_at"] = None
        return broken


def generate(
    count: int, *, invalid_rate: float = 0.0, duplicate_rate: float = 0.0, seed: int = 7
) -> Iterator[str | dict[str, Any]]:
    """``count`` items: a record dict, or a raw text line for a record that is not JSON."""
    gen = SampleGenerator(seed)
    recent: list[dict[str, Any]] = []
    for n in range(1, count + 1):
        roll = gen.rng.random()
        if recent and roll < duplicate_rate:
            yield gen.rng.choice(recent)
            continue
        record = gen.record(n)
        if roll < duplicate_rate + invalid_rate:
            yield gen.corrupt(record)
            continue
        if len(recent) < 50:
            recent.append(record)
        yield record


CSV_COLUMNS = [
    "application_id",
    "customer_id",
    "status",
    "submitted_at",
    "business.legal_name",
    "business.dba",
    "business.business_type",
    "business.ein",
    "business.incorporated_on",
    "business.industry",
    "business.address.line1",
    "business.address.city",
    "business.address.region",
    "business.address.postal_code",
    "business.address.country",
    "owners",
    "contact.email",
    "contact.phone",
    "requested_products",
    "annual_revenue",
]


def _flat(record: dict[str, Any], column: str) -> str:
    node: Any = record
    for part in column.split("."):
        if not isinstance(node, dict) or part not in node or node[part] is None:
            return ""
        node = node[part]
    return json.dumps(node) if isinstance(node, list | dict) else str(node)


def write(
    items: Iterator[str | dict[str, Any]], out: io.TextIOBase | Any, fmt: Format = "jsonl"
) -> int:
    """Write items in the format; a text item (not JSON) is written as is. Returns the count."""
    n = 0
    if fmt == "csv":
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        for item in items:
            if isinstance(item, str):
                out.write(item.replace("\n", " ") + "\n")
            else:
                writer.writerow([_flat(item, c) for c in CSV_COLUMNS])
            n += 1
        return n
    if fmt == "json":
        out.write("[\n")
    for item in items:
        if isinstance(item, str):
            text = json.dumps(item) if fmt == "json" else item  # keep the array well-formed
        else:
            text = json.dumps(item, separators=(",", ":"))
        if fmt == "json":
            out.write(("" if n == 0 else ",\n") + text)
        else:
            out.write(text + "\n")
        n += 1
    if fmt == "json":
        out.write("\n]\n")
    return n

"""An event source mapping as the tap, ``status`` and ``cutover`` see it: its state and what
caps it, in either of the two modes of an SQS mapping.

- on-demand (the default): Lambda scales the pollers itself; ``ScalingConfig.MaximumConcurrency``
  (2 to 1000) caps the concurrent invocations.
- provisioned (``ProvisionedPollerConfig``): a floor and a ceiling of pollers
  (``MinimumPollers`` 2 to 200, ``MaximumPollers`` 2 to 10,000), which scale up about three
  times faster. AWS refuses a maximum concurrency beside it: the cap is ``MaximumPollers``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

MAX_POLLERS = 10_000  # AWS's ceiling for an SQS mapping's MaximumPollers
ON_DEMAND = "on-demand"
PROVISIONED = "provisioned"


@dataclass
class MappingState:
    uuid: str
    function: str
    state: str
    enabled: bool
    max_concurrency: int | None
    min_pollers: int | None = None  # provisioned mode only
    max_pollers: int | None = None

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> MappingState:
        state = str(data.get("State", ""))
        pollers = data.get("ProvisionedPollerConfig") or {}
        return cls(
            uuid=str(data["UUID"]),
            function=str(data.get("FunctionArn", "")).rsplit(":", 1)[-1],
            state=state,
            enabled=state in {"Enabled", "Enabling", "Creating", "Updating"},
            max_concurrency=(data.get("ScalingConfig") or {}).get("MaximumConcurrency"),
            min_pollers=pollers.get("MinimumPollers"),
            max_pollers=pollers.get("MaximumPollers"),
        )

    @property
    def mode(self) -> str:
        provisioned = self.min_pollers is not None or self.max_pollers is not None
        return PROVISIONED if provisioned else ON_DEMAND

    @property
    def cap(self) -> int | None:
        """The limit it runs at: its maximum pollers in provisioned mode, else its maximum
        concurrency (None: none set)."""
        return self.max_pollers if self.mode == PROVISIONED else self.max_concurrency

    @property
    def limit_text(self) -> str:
        """What caps the mapping, as a person reads it."""
        if self.mode == PROVISIONED:
            return f"pollers {self.min_pollers or '?'}-{self.max_pollers or '?'}"
        return "—" if self.max_concurrency is None else str(self.max_concurrency)

    def limited(self, n: int | None, default: int | None) -> dict[str, Any] | None:
        """The update that caps this mapping at ``n`` (None: back to ``default``, or
        nothing to do when there is none)."""
        n = n if n is not None else default
        if n is None:
            return None
        if self.mode == PROVISIONED:
            low = min(self.min_pollers or n, n)
            return {"ProvisionedPollerConfig": {"MinimumPollers": low, "MaximumPollers": n}}
        return {"ScalingConfig": {"MaximumConcurrency": n}}

    def to_dict(self) -> dict[str, Any]:
        return {
            "uuid": self.uuid,
            "function": self.function,
            "state": self.state,
            "enabled": self.enabled,
            "mode": self.mode,
            "max_concurrency": self.max_concurrency,
            "min_pollers": self.min_pollers,
            "max_pollers": self.max_pollers,
        }

"""A dataset's options, as its sidecar `<stem>.json` beside the export gives them.

One flat JSON object: the reading options (`ReadOptions`: time zone, column mapping, date format), the
rules' choices (`BarRules`: e.g. `allow_nonpositive_prices`) and `replace`, which lets a re-import rewrite
the stored history (drop bars or change their values) instead of being refused.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from trading_assets.compute.bar_checks import BarRules
from trading_assets.compute.bar_format import ReadOptions

_READ_KEYS = frozenset(f.name for f in fields(ReadOptions))
_RULE_KEYS = frozenset(f.name for f in fields(BarRules))
_SWITCHES = _RULE_KEYS | {"replace"}


@dataclass(frozen=True)
class DatasetOptions:
    read: ReadOptions = field(default_factory=ReadOptions)
    rules: BarRules = field(default_factory=BarRules)
    replace: bool = False

    @classmethod
    def from_dict(cls, values: dict[str, object]) -> DatasetOptions:
        """From the sidecar's JSON object; ValueError naming an unknown key or a switch that is no bool."""
        unknown = set(values) - _READ_KEYS - _SWITCHES
        if unknown:
            known = sorted(_READ_KEYS | _SWITCHES)
            raise ValueError(f"unknown option keys {sorted(unknown)} (known: {known})")
        for key in sorted(_SWITCHES & values.keys()):
            if not isinstance(values[key], bool):
                raise ValueError(f"option {key!r} must be true or false, not {values[key]!r}")
        return cls(
            read=ReadOptions.from_dict({k: v for k, v in values.items() if k in _READ_KEYS}),
            rules=BarRules(**{k: v for k, v in values.items() if k in _RULE_KEYS}),  # type: ignore[arg-type]
            replace=bool(values.get("replace", False)),
        )

    def overridden(self, read: ReadOptions, replace: bool = False) -> DatasetOptions:
        """These options with the caller's reading options, and `replace` also when the caller asks."""
        return DatasetOptions(read=read, rules=self.rules, replace=self.replace or replace)

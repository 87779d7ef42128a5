"""Indicator sets: a declarative list of indicators, validated on load into a `SetSpec`.

A set file (YAML or JSON) looks like this:

    name: default
    datasets: [btc25]          # only in files dropped into the sets folder: where to apply the set
    indicators:
      - indicator: rsi
        params: {n: 14}
        column: rsi_14
      - indicator: macd        # several outputs: columns macd_line, macd_signal, macd_hist
        column: macd
      - indicator: bbands
        column: bb
        outputs: [pctb, bandwidth]   # keep only some outputs: bb_pctb, bb_bandwidth

Validation names the file, the entry (number, line and column) and the field: an unknown indicator, an
unknown or out-of-range parameter, an invalid or duplicate column name. The canonical form (defaults
filled in, keys sorted) is what the catalog stores and hashes: two files that mean the same set are the
same set.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from trading_assets import naming
from trading_assets.compute.indicators.registry import REGISTRY, Indicator, IndicatorError, Registry

_ENTRY_KEYS = {"indicator", "params", "column", "outputs"}
_SET_KEYS = {"name", "indicators"}
_FILE_KEYS = _SET_KEYS | {"datasets"}


class SpecError(ValueError):
    """An indicator set that cannot be used; the message says where (file, entry, line) and why."""


@dataclass(frozen=True)
class Column:
    """One stored column: which output of which entry, and its warm-up."""

    name: str
    entry: int
    output: str
    lookback: int


@dataclass(frozen=True)
class Entry:
    """One indicator with validated parameters, and the outputs it keeps."""

    indicator: str
    params: Mapping[str, int | float]
    column: str
    outputs: tuple[str, ...]

    def canonical(self) -> dict[str, Any]:
        return {
            "indicator": self.indicator,
            "params": dict(sorted(self.params.items())),
            "column": self.column,
            "outputs": list(self.outputs),
        }


@dataclass(frozen=True)
class SetSpec:
    """A validated indicator set; `registry` resolves its indicators."""

    name: str
    entries: tuple[Entry, ...]
    columns: tuple[Column, ...]
    registry: Registry = field(default=REGISTRY, compare=False, repr=False)

    def indicator(self, entry: int) -> Indicator:
        return self.registry.get(self.entries[entry].indicator)

    def to_json(self) -> str:
        """The canonical JSON that the catalog stores: the name and the indicators."""
        body = {"name": self.name, "indicators": [e.canonical() for e in self.entries]}
        return json.dumps(body, sort_keys=True, separators=(",", ":"))

    @property
    def sha256(self) -> str:
        """What identifies the set: its indicators, parameters, outputs and columns. The name is a label and
        is left out, so the same indicators under another name are the same set."""
        body = [e.canonical() for e in self.entries]
        return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def lookbacks(self) -> tuple[int, ...]:
        return tuple(c.lookback for c in self.columns)

    @property
    def max_lookback(self) -> int:
        return max((c.lookback for c in self.columns), default=0)


@dataclass(frozen=True)
class SetFile:
    """A set file from the sets folder: the spec and the datasets it is to be applied to."""

    path: Path
    spec: SetSpec
    datasets: tuple[str, ...]


def parse_spec(data: object, *, source: str = "indicator set", registry: Registry = REGISTRY) -> SetSpec:
    """Validate a set given as plain data (from YAML, JSON or the launchpad's config)."""
    return _parse(data, source, registry, lines={}, file_keys=False)[0]


def spec_from_json(text: str, *, registry: Registry = REGISTRY) -> SetSpec:
    """The spec of a catalog row (canonical JSON); it validates again against today's registry."""
    return parse_spec(json.loads(text), source="stored indicator set", registry=registry)


def load_set_file(path: str | Path, *, registry: Registry = REGISTRY, need_datasets: bool = True) -> SetFile:
    """Read and validate a set file (.yaml, .yml or .json); SpecError names the file, entry and line.

    Files in the sets folder must say which datasets they apply to; a spec kept for other uses (the
    default set) may leave `datasets` out with `need_datasets=False`."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise SpecError(f"{path}: cannot read: {err}") from None
    lines: dict[int, int] = {}
    try:
        data = json.loads(text, object_pairs_hook=_unique_keys) if path.suffix.lower() == ".json" else None
        if data is None:
            data = yaml.load(text, Loader=_UniqueKeyLoader)
    except (json.JSONDecodeError, yaml.YAMLError, ValueError) as err:
        raise SpecError(f"{path}: not valid {path.suffix.lstrip('.').upper()}: {err}") from None
    try:
        lines = _entry_lines(text)  # JSON is YAML too, so its entries get line numbers the same way
    except yaml.YAMLError:
        lines = {}
    if not need_datasets and isinstance(data, Mapping) and "datasets" not in data:
        return SetFile(
            path=path, spec=_parse(data, str(path), registry, lines=lines, file_keys=False)[0], datasets=()
        )
    spec, datasets = _parse(data, str(path), registry, lines=lines, file_keys=True)
    return SetFile(path=path, spec=spec, datasets=datasets)


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader refusing a key given twice in one mapping (`{n: 5, n: 7}`) instead of keeping the last."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[object, object]:
        seen: set[object] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} appears twice in one mapping", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _unique_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    keys = [k for k, _ in pairs]
    repeated = sorted({k for k in keys if keys.count(k) > 1})
    if repeated:
        raise ValueError(f"key(s) {repeated} appear twice in one object")
    return dict(pairs)


def _entry_lines(text: str) -> dict[int, int]:
    """Line number (1-based) of each entry under `indicators`, so errors can point at it."""
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    if not isinstance(root, yaml.MappingNode):
        return {}
    for key, value in root.value:
        if key.value == "indicators" and isinstance(value, yaml.SequenceNode):
            return {i: item.start_mark.line + 1 for i, item in enumerate(value.value)}
    return {}


def _parse(
    data: object, source: str, registry: Registry, *, lines: Mapping[int, int], file_keys: bool
) -> tuple[SetSpec, tuple[str, ...]]:
    if not isinstance(data, Mapping):
        raise SpecError(
            f"{source}: expected a mapping with 'name' and 'indicators', got {type(data).__name__}"
        )
    allowed = _FILE_KEYS if file_keys else _SET_KEYS
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise SpecError(f"{source}: unknown key(s) {unknown}; expected {sorted(allowed)}")
    name = data.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 64:
        raise SpecError(f"{source}: 'name' must be a non-empty string of at most 64 characters")
    raw_entries = data.get("indicators")
    if not isinstance(raw_entries, Sequence) or isinstance(raw_entries, str) or not raw_entries:
        raise SpecError(f"{source}: 'indicators' must be a non-empty list")
    entries: list[Entry] = []
    columns: list[Column] = []
    owner: dict[str, int] = {}
    for i, raw in enumerate(raw_entries):
        where = f"{source}: entry {i + 1}" + (f" (line {lines[i]})" if i in lines else "")
        entry, entry_columns = _parse_entry(raw, i, where, registry)
        for column in entry_columns:
            if column.name in owner:
                raise SpecError(
                    f"{where}: duplicate column {column.name!r} (entry {owner[column.name] + 1} has it too)"
                )
            owner[column.name] = i
        entries.append(entry)
        columns.extend(entry_columns)
    datasets = _parse_datasets(data.get("datasets"), source) if file_keys else ()
    return SetSpec(name.strip(), tuple(entries), tuple(columns), registry), datasets


def _parse_entry(raw: object, index: int, where: str, registry: Registry) -> tuple[Entry, list[Column]]:
    if not isinstance(raw, Mapping):
        raise SpecError(f"{where}: expected a mapping with 'indicator' and 'column'")
    unknown = sorted(set(raw) - _ENTRY_KEYS)
    if unknown:
        raise SpecError(f"{where}: unknown key(s) {unknown}; expected {sorted(_ENTRY_KEYS)}")
    if not isinstance(raw.get("indicator"), str):
        raise SpecError(f"{where}: field 'indicator' must name an indicator")
    try:
        item = registry.get(raw["indicator"])
        params = item.validate(_mapping(raw.get("params"), where, "params"))
        lookbacks = item.lookbacks(params)
    except IndicatorError as err:
        raise SpecError(f"{where}: {err}") from None
    column = raw.get("column", item.name)
    try:
        naming.column_name(column)
    except naming.InvalidNameError as err:
        raise SpecError(f"{where}: field 'column': {err}") from None
    outputs = raw.get("outputs", list(item.outputs))
    if not isinstance(outputs, Sequence) or isinstance(outputs, str) or not outputs:
        raise SpecError(f"{where}: field 'outputs' must be a non-empty list of {list(item.outputs)}")
    bad = [o for o in outputs if o not in item.outputs]
    if bad or len(set(outputs)) != len(outputs):
        raise SpecError(f"{where}: field 'outputs': {bad or outputs} not distinct outputs of {item.name}")
    kept = tuple(o for o in item.outputs if o in outputs)  # declaration order, whatever the file's order
    columns = []
    for output in kept:
        name = column if len(item.outputs) == 1 else f"{column}_{output}"
        try:
            naming.column_name(name)
        except naming.InvalidNameError as err:
            raise SpecError(f"{where}: column for output {output!r}: {err}") from None
        if name == "ts":
            raise SpecError(f"{where}: column 'ts' is the timestamp; choose another name")
        columns.append(Column(name=name, entry=index, output=output, lookback=lookbacks[output]))
    return Entry(item.name, params, column, kept), columns


def _mapping(value: object, where: str, field: str) -> Mapping[str, object]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise SpecError(f"{where}: field {field!r} must be a mapping of name to number")
    return value


def _parse_datasets(value: object, source: str) -> tuple[str, ...]:
    if not isinstance(value, Sequence) or isinstance(value, str) or not value:
        raise SpecError(f"{source}: 'datasets' must be a non-empty list of dataset names")
    try:
        return tuple(dict.fromkeys(naming.dataset_name(d) for d in value))
    except naming.InvalidNameError as err:
        raise SpecError(f"{source}: 'datasets': {err}") from None

"""Launchpad configs made from the dataclasses they fill: one schema per concept.

A dataclass of the compute library (`TargetConfig`, `Hyperparameters`, `SimConfig`, ...) owns each of its
fields' name, type and default; `derived_config` makes its launchpad form (a `dg.Config`) from it, so a
field added, renamed or given another default there changes the form with it. The form adds only what a
form needs: a description of every field, and another type where the launchpad takes text (fold lengths).
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Collection, Mapping
from typing import Any

import dagster as dg
import pydantic
from pydantic import Field


def derived_config(
    name: str,
    sources: tuple[type, ...],
    descriptions: Mapping[str, str],
    *,
    module: str,
    doc: str,
    exclude: Collection[str] = (),
    types: Mapping[str, Any] | None = None,
) -> type[dg.Config]:
    """A `dg.Config` named `name`, of module `module` (where it is imported and pickled from), with the
    fields of the dataclasses `sources`, in their order, but those in `exclude`: each with its dataclass
    type (or `types[field]`) and default, described by `descriptions`.

    ValueError if a field has no description or a description no field: the form and the dataclasses
    can then only drift apart by a deliberate `exclude`.
    """
    fields = [f for source in sources for f in dataclasses.fields(source) if f.name not in exclude]
    hints = {key: value for source in sources for key, value in typing.get_type_hints(source).items()}
    names = [f.name for f in fields]
    if set(names) != set(descriptions):
        raise ValueError(
            f"{name}: fields without a description {sorted(set(names) - set(descriptions))}, "
            f"descriptions without a field {sorted(set(descriptions) - set(names))}"
        )
    definitions: dict[str, Any] = {}
    for f in fields:
        if f.default_factory is not dataclasses.MISSING:
            default = Field(default_factory=f.default_factory, description=descriptions[f.name])
        else:
            # A dataclass field without a default is a required field of the form.
            default = Field(
                default=... if f.default is dataclasses.MISSING else f.default,
                description=descriptions[f.name],
            )
        definitions[f.name] = ((types or {}).get(f.name, hints[f.name]), default)
    return pydantic.create_model(name, __base__=dg.Config, __doc__=doc, __module__=module, **definitions)

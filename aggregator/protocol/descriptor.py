"""Descriptors from `--query`: their shape, merging them, and who owns which setting."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from aggregator.protocol.errors import AggregatorError
from aggregator.protocol.text import DistinctNames, brief, clash_message, clip

Descriptor = dict[str, Any]  # {"application": {"components": {...}}}
SettingKey = tuple[str, str]  # (component, setting)


class DescriptorShapeError(ValueError):
    """A driver's `--query` output is not a descriptor."""


def normalize(raw: Mapping[str, Any]) -> Descriptor:
    """The descriptor with its `application` wrapper (older drivers omit it)."""
    application = raw.get("application", raw)
    if not isinstance(application, dict):
        raise DescriptorShapeError("'application' is not an object")
    components = application.get("components")
    if not isinstance(components, dict):
        raise DescriptorShapeError("it has no 'components' object")
    for name, component in components.items():
        if not isinstance(component, dict):
            raise DescriptorShapeError(f"component {brief(name)} is not an object")
        settings = component.get("settings", {})
        if not isinstance(settings, dict):
            raise DescriptorShapeError(f"component {brief(name)}: 'settings' is not an object")
        for setting, spec in settings.items():
            if not isinstance(spec, dict):
                raise DescriptorShapeError(f"setting {clip(f'{name}.{setting}')} is not an "
                                           "object")
    return {"application": application}


def components_of(descriptor: Descriptor) -> dict[str, Any]:
    components: dict[str, Any] = descriptor["application"]["components"]
    return components


def settings_of(descriptor: Descriptor) -> dict[SettingKey, dict[str, Any]]:
    return {
        (component, setting): spec
        for component, body in components_of(descriptor).items()
        for setting, spec in body.get("settings", {}).items()
    }


class Ownership(NamedTuple):
    """Which driver reported which setting, from the drivers' own descriptors."""

    owner: Mapping[SettingKey, str]
    descriptors: Mapping[str, Descriptor]

    def current(self, key: SettingKey) -> dict[str, Any]:
        return settings_of(self.descriptors[self.owner[key]])[key]


def merge(descriptors: Sequence[tuple[str, Descriptor]]) -> tuple[Descriptor, Ownership]:
    """All drivers' descriptors as one, in driver order.

    A setting reported by two drivers would make an adjust ambiguous: that is an error
    naming both drivers. A component may be shared by drivers owning different settings.
    """
    owner: dict[SettingKey, str] = {}
    merged_components: dict[str, Any] = {}
    merged_application: dict[str, Any] = {}
    names = DistinctNames()  # components and settings, as servo will get them
    for driver, descriptor in descriptors:
        application = descriptor["application"]
        for key, value in application.items():
            if key != "components":
                merged_application.setdefault(key, value)
        for component, body in components_of(descriptor).items():
            _distinct(names, "component", (component,), driver)
            target = merged_components.setdefault(component, {})
            for key, value in body.items():
                if key != "settings":
                    target.setdefault(key, value)
            target_settings = target.setdefault("settings", {})
            for setting, spec in body.get("settings", {}).items():
                first = owner.get((component, setting))
                if first is not None:
                    raise AggregatorError(
                        "duplicate-setting",
                        f"setting {component}.{setting} is reported by both {first} and "
                        f"{driver}; each setting must belong to exactly one driver",
                    )
                _distinct(names, "setting", (component, setting), driver)
                owner[(component, setting)] = driver
                target_settings[setting] = spec
    merged_application["components"] = merged_components
    return {"application": merged_application}, Ownership(owner, dict(descriptors))


def _distinct(names: DistinctNames, kind: str, name: tuple[str, ...], driver: str) -> None:
    """Two components (or settings) servo would get under one name: the one would
    silently overwrite the other in the merged descriptor it sees."""
    first = names.clash(name, driver)
    if first is not None:
        raise AggregatorError("duplicate-setting", clash_message(kind, first, name, driver))


def split_request(
    components: Mapping[str, Any], ownership: Ownership, driver_order: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """Each driver's share of the requested components: only settings it reported.

    Returns {driver: components} for drivers with something to change, in driver order.
    Raises when any requested setting has no owner, listing every such setting.
    """
    shares: dict[str, dict[str, Any]] = {}
    unowned: list[str] = []
    for component, body in components.items():
        for setting, value in body.get("settings", {}).items():
            driver = ownership.owner.get((component, setting))
            if driver is None:
                unowned.append(f"{component}.{setting}")
                continue
            share = shares.setdefault(driver, {}).setdefault(component, {})
            for key, extra in body.items():
                if key != "settings":
                    share.setdefault(key, extra)
            share.setdefault("settings", {})[setting] = value
    if unowned:
        raise AggregatorError(
            "unknown-settings",
            f"no driver reported {', '.join(unowned)}; nothing was changed "
            "(run --query to see the settings each driver offers)",
        )
    ordered = [name for name in driver_order if name in shares]
    ordered += [name for name in shares if name not in ordered]  # never drop a setting
    return {name: shares[name] for name in ordered}

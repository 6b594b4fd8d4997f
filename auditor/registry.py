"""Discovery of check plug-ins through the ``auditor.checks`` entry-point group."""

from __future__ import annotations

from importlib.metadata import entry_points

from auditor.check import Check, FindingSpec
from auditor.errors import AuditorError

GROUP = "auditor.checks"


class BrokenPlugin:
    """A registered entry point that failed to load; listed, never run."""

    def __init__(self, name: str, value: str, error: str) -> None:
        self.name = name
        self.value = value
        self.error = error


def discover() -> tuple[dict[str, Check], list[BrokenPlugin]]:
    """Load every registered check. A plug-in that fails to import is reported, not fatal."""
    checks: dict[str, Check] = {}
    broken: list[BrokenPlugin] = []
    for ep in sorted(entry_points(group=GROUP), key=lambda e: e.name):
        try:
            obj = ep.load()
            check = obj() if isinstance(obj, type) else obj
            if not isinstance(check, Check) or not check.id:
                raise TypeError(f"{ep.value} is not an auditor.check.Check with an id")
        except Exception as exc:  # a third-party plug-in must not break the tool
            broken.append(BrokenPlugin(ep.name, ep.value, f"{type(exc).__name__}: {exc}"))
            continue
        if check.id in checks:
            broken.append(BrokenPlugin(ep.name, ep.value, f"duplicate check id {check.id!r}"))
            continue
        checks[check.id] = check
    return checks, broken


def select(names: str | None) -> list[Check]:
    """The checks named in a ``--checks a,b`` value (all installed when None)."""
    available, _ = discover()
    if not names:
        return list(available.values())
    wanted = [n.strip() for n in names.split(",") if n.strip()]
    unknown = [n for n in wanted if n not in available]
    if unknown:
        raise AuditorError(
            f"unknown check(s): {', '.join(unknown)} (installed: {', '.join(available) or 'none'})"
        )
    return [available[n] for n in dict.fromkeys(wanted)]


def finding_catalogue() -> dict[str, FindingSpec]:
    """The finding specs of every installed check by id; empty when the plug-ins cannot be
    loaded, so that exports and reports still come out."""
    try:
        checks, _ = discover()
    except Exception:  # a broken plug-in set must not stop an export or a report
        return {}
    return {spec.id: spec for c in checks.values() for spec in c.catalogue}

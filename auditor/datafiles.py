"""The one reader of YAML data files (policies, finding catalogues, vocabularies, feed configs).

Any failure is one :class:`~auditor.errors.AuditorError` line naming what was read and where,
never a traceback: these files are often a user's own copy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from auditor.errors import AuditorError

# libyaml's safe loader when PyYAML was built with it (several times faster), else the Python one.
_SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml(path: Path, what: str = "policy file") -> Any:
    """Parse a YAML data file; any failure is one AuditorError line naming ``what`` and the path."""
    try:
        with open(path, encoding="utf-8") as fh:
            return yaml.load(fh, Loader=_SafeLoader)  # noqa: S506 (a safe loader, C or Python)
    except FileNotFoundError:
        raise AuditorError(f"{what} not found: {path}") from None
    # ValueError: an int of more than 4300 digits; RecursionError: "[[[[..." nested too deep
    except (OSError, UnicodeDecodeError, yaml.YAMLError, ValueError, RecursionError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise AuditorError(f"cannot read {what} {path}: {first}") from None

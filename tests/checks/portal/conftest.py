"""The lab portals (auditor.lab.portal_sites) on 127.0.11.x, started once per test session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from auditor.lab.portal_sites import OTHER_PORTALS, PORTAL_SITES
from auditor.lab.sites import Lab

LAB_FIRST = "127.0.11.10"


@pytest.fixture(scope="session")
def portal_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    lab = Lab(tmp_path_factory.mktemp("portal-lab"), list(OTHER_PORTALS) + list(PORTAL_SITES),
              first_address=LAB_FIRST)
    lab.start()
    yield lab
    lab.stop()

"""Trust stores for the tls check: a ``--ca-file`` or sslyze's bundled Mozilla store.

The analysis rebuilds certificate chains itself (see :mod:`checks.tls.analysis`), so it
needs the store's certificates in the evidence. Only the ones that could take part in a
path for the chains actually served are recorded (:func:`relevant`): the evidence stays
small and self-contained, and re-judging it offline gives the same answer as the whole store.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from checks.tls.analysis import is_self_issued
from checks.tls.evidence import TrustStore

CA_FILE_MAX_BYTES = 20 * 1024 * 1024


@dataclass(frozen=True)
class Store:
    """A trust store split into anchors (self-issued roots) and known intermediates."""

    name: str
    path: str
    version: str
    custom: bool
    anchors: list[x509.Certificate] = field(default_factory=list)
    intermediates: list[x509.Certificate] = field(default_factory=list)


def make_store(name: str, path: str, version: str, certs: list[x509.Certificate], *, custom: bool) -> Store:
    """Split ``certs`` into anchors and intermediates.

    A CA file is meant to hold roots; any other CA certificate in it is treated as a known
    intermediate (like a browser's intermediate cache), not as an anchor, so that a server
    omitting that intermediate is still reported as incomplete. A store with no self-issued
    certificate at all, and the Mozilla store, are all anchors.
    """
    roots = [c for c in certs if is_self_issued(c)]
    if custom and roots:
        intermediates = [c for c in certs if not is_self_issued(c)]
        return Store(name, path, version, custom, roots, intermediates)
    return Store(name, path, version, custom, list(certs), [])


def load_ca_file(path: Path) -> Store:
    """The store of a PEM CA file; ValueError when it is too large or holds no certificate."""
    size = path.stat().st_size
    if size > CA_FILE_MAX_BYTES:
        raise ValueError(f"larger than {CA_FILE_MAX_BYTES // (1024 * 1024)} MB")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        certs = x509.load_pem_x509_certificates(path.read_bytes())
    if not certs:
        raise ValueError("no PEM certificate in it")
    return make_store(f"CA file {path.name}", str(path), "n/a", certs, custom=True)


@lru_cache(maxsize=1)
def mozilla_store() -> Store:
    """sslyze's bundled Mozilla store (parsed once per process)."""
    from sslyze.plugins.certificate_info.trust_stores.trust_store_repository import TrustStoresRepository

    store = TrustStoresRepository.get_default().get_main_store()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a few Mozilla roots have non-positive serials
        certs = x509.load_pem_x509_certificates(Path(store.path).read_bytes())
    return make_store(f"{store.name} trust store", str(store.path), str(store.version), certs, custom=False)


def pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(Encoding.PEM).decode("ascii")


def relevant(
    store: Store, chains: list[list[x509.Certificate]]
) -> tuple[list[x509.Certificate], list[x509.Certificate]]:
    """The store's anchors and intermediates that could issue something in ``chains``.

    Path building only ever uses a certificate whose subject is some certificate's issuer,
    so the analysis gives the same answer with these as with the whole store.
    """
    needed = {c.issuer for chain in chains for c in chain}
    intermediates: list[x509.Certificate] = []
    changed = True
    while changed:
        changed = False
        for c in store.intermediates:
            if c.subject in needed and c not in intermediates:
                intermediates.append(c)
                needed.add(c.issuer)
                changed = True
    anchors = [a for a in store.anchors if a.subject in needed]
    return anchors, intermediates


def store_evidence(store: Store, chains: list[list[x509.Certificate]]) -> TrustStore:
    """The evidence record of ``store``, cut down to what ``chains`` could use."""
    anchors, intermediates = relevant(store, chains)
    return TrustStore(
        name=store.name,
        custom=store.custom,
        path=store.path,
        version=store.version,
        anchors_pem=tuple(pem(c) for c in anchors),
        intermediates_pem=tuple(pem(c) for c in intermediates),
    )

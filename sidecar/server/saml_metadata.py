"""SAML IdP metadata files: read with defusedxml, cached per provider, re-read when they change.

A provider's ``metadata_file`` is a SAML 2.0 metadata document (what every IdP exports): an
``md:EntityDescriptor`` (or an ``md:EntitiesDescriptor`` holding exactly one IdP) whose
``entityID`` is the Issuer its assertions carry, and whose ``IDPSSODescriptor`` lists the
signing certificates in ``KeyDescriptor`` elements (``use="signing"``, or no ``use``).
Several certificates may be listed, which is how an IdP rotates its key.

Any problem (missing or unreadable file, not XML, a DTD, no entity id, no signing certificate,
a certificate that does not parse) is an ``InvalidIdentityToken`` with reason ``metadata``;
a broken file is never silently replaced by an older cached copy.
"""

from __future__ import annotations

import base64
import binascii
import threading
import xml.etree.ElementTree as StdET
from pathlib import Path
from typing import Any

import defusedxml.ElementTree as DefusedET
from cryptography import x509
from defusedxml import DefusedXmlException

from sidecar.errors import InvalidIdentityToken
from sidecar.identity.model import SamlProvider
from sidecar.sts.federation.saml import DS, SamlMetadata

MD = "urn:oasis:names:tc:SAML:2.0:metadata"
MAX_METADATA_BYTES = 4 * 1024 * 1024
_NS = {"md": MD, "ds": DS}

__all__ = ["MetadataSource", "SamlMetadata", "parse_metadata", "read_metadata"]


def _error(source: str, message: str) -> InvalidIdentityToken:
    where = f"{source}: " if source else ""
    return InvalidIdentityToken(f"SAML provider metadata {where}{message}", reason="metadata")


def _entity(root: Any, source: str) -> Any:
    if root.tag == f"{{{MD}}}EntityDescriptor":
        return root
    if root.tag == f"{{{MD}}}EntitiesDescriptor":
        idps = [
            e
            for e in root.iter(f"{{{MD}}}EntityDescriptor")
            if e.find("md:IDPSSODescriptor", _NS) is not None
        ]
        if len(idps) == 1:
            return idps[0]
        raise _error(source, f"must describe exactly one identity provider, not {len(idps)}")
    raise _error(source, "is not an md:EntityDescriptor")


def parse_metadata(data: bytes, source: str = "") -> SamlMetadata:
    """Entity id and signing certificates (DER) of an IdP metadata document."""
    try:
        root = DefusedET.fromstring(
            data, forbid_dtd=True, forbid_entities=True, forbid_external=True
        )
    except DefusedXmlException:
        raise _error(source, "must not contain a DTD or entity declarations") from None
    except (StdET.ParseError, ValueError) as exc:
        raise _error(source, f"is not well-formed XML: {exc}") from None
    entity = _entity(root, source)
    entity_id = (entity.get("entityID") or "").strip()
    if not entity_id:
        raise _error(source, "has no entityID")
    idp = entity.find("md:IDPSSODescriptor", _NS)
    if idp is None:
        raise _error(source, "has no IDPSSODescriptor")
    certificates: list[bytes] = []
    for descriptor in idp.findall("md:KeyDescriptor", _NS):
        if descriptor.get("use", "signing") != "signing":
            continue
        for element in descriptor.findall("ds:KeyInfo/ds:X509Data/ds:X509Certificate", _NS):
            text = "".join((element.text or "").split())
            try:
                der = base64.b64decode(text, validate=True)
                x509.load_der_x509_certificate(der)
            except (binascii.Error, ValueError):
                raise _error(source, "holds a signing certificate that does not parse") from None
            if der not in certificates:
                certificates.append(der)
    if not certificates:
        raise _error(source, "lists no signing certificate")
    return SamlMetadata(entity_id=entity_id, certificates=tuple(certificates))


def read_metadata(path: str | Path) -> SamlMetadata:
    p = Path(path)
    try:
        with p.open("rb") as fh:
            data = fh.read(MAX_METADATA_BYTES + 1)
    except OSError as exc:
        raise _error(str(p), f"cannot be read: {exc.strerror}") from None
    if len(data) > MAX_METADATA_BYTES:
        raise _error(str(p), f"is larger than {MAX_METADATA_BYTES} bytes")
    return parse_metadata(data, str(p))


class MetadataSource:
    """Metadata per provider, cached; a file is read again when its modification time (or
    size, or path) changes, so a rotated IdP certificate is picked up without a restart."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[tuple[str, int, int], SamlMetadata]] = {}
        self.reads = 0  # how many times a file was actually parsed (for tests and metrics)

    def get(self, provider: SamlProvider) -> SamlMetadata:
        path = Path(provider.metadata_file)
        try:
            st = path.stat()
        except OSError as exc:
            raise _error(str(path), f"cannot be read: {exc.strerror}") from None
        stamp = (str(path), st.st_mtime_ns, st.st_size)
        with self._lock:
            cached = self._cache.get(provider.arn)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        metadata = read_metadata(path)
        with self._lock:
            self.reads += 1
            self._cache[provider.arn] = (stamp, metadata)
        return metadata

    def forget(self, provider_arn: str) -> None:
        with self._lock:
            self._cache.pop(provider_arn, None)

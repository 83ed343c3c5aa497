"""SAML 2.0 assertion validation for AssumeRoleWithSAML (docs/SEMANTICS.md §6.4, §7.4, §7.5).

Pure: the caller passes the IdP metadata (entity id and signing certificates) and the time.

The rule is "see what is signed": the XML is parsed with defusedxml first (no DTD, no entity,
no external reference), its shape is checked strictly (one Response, exactly one Assertion,
a direct child of the Response, unique ids, signatures only where SAML puts them, no comments
or processing instructions inside the assertion), then signxml verifies the signature against
each metadata certificate in turn, and every value is read from the element signxml returns as
signed, never from the document that came in. The signed element must be the assertion that the
document holds (same id, same place), so signature wrapping and moved or duplicated assertions
are refused.

Each refusal carries a short ``reason`` for metrics and logs: malformed, unsigned,
bad_signature, wrapped, wrong_issuer, wrong_recipient, wrong_audience, expired, not_yet_valid,
too_old, too_large (and idp_rejected when the IdP's own Status is not Success).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import re
import xml.etree.ElementTree as StdET
from dataclasses import dataclass, field
from typing import Any, Protocol

import defusedxml.ElementTree as DefusedET
from cryptography import x509
from defusedxml import DefusedXmlException
from lxml import etree
from signxml.verifier import SignatureConfiguration, XMLVerifier

from sidecar.errors import ExpiredTokenException, IDPRejectedClaim, InvalidIdentityToken
from sidecar.identity.model import SamlProvider

SAMLP = "urn:oasis:names:tc:SAML:2.0:protocol"
SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
DS = "http://www.w3.org/2000/09/xmldsig#"
XSI_NIL = "{http://www.w3.org/2001/XMLSchema-instance}nil"
NS = {"samlp": SAMLP, "saml": SAML, "ds": DS}

RESPONSE = f"{{{SAMLP}}}Response"
ASSERTION = f"{{{SAML}}}Assertion"
ENCRYPTED_ASSERTION = f"{{{SAML}}}EncryptedAssertion"
SIGNATURE = f"{{{DS}}}Signature"

SUB_TYPE_PREFIX = "urn:oasis:names:tc:SAML:2.0:nameid-format:"
UNSPECIFIED_FORMAT = "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified"
BEARER = "urn:oasis:names:tc:SAML:2.0:cm:bearer"
SUCCESS = "urn:oasis:names:tc:SAML:2.0:status:Success"

MAX_AGE = 300  # an assertion must be redeemed within 5 minutes of its IssueInstant
MAX_CHARS = 100_000  # SAMLAssertion: 4..100,000 characters of base64
TOO_OLD = "Token must be redeemed within 5 minutes of issuance"
SIGNATURE_INVALID = "Response signature invalid"

_ID_ATTRIBUTES = ("ID", "Id")
_WHITESPACE = re.compile(rb"[ \t\r\n]+")
_INSTANT = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d+)?(Z|[+-]\d{2}:\d{2})?\Z", re.ASCII
)


@dataclass(frozen=True, slots=True)
class SamlMetadata:
    """What an IdP's metadata contributes: its entity id and its signing certificates
    (each DER or PEM)."""

    entity_id: str
    certificates: tuple[bytes, ...]


class MetadataLookup(Protocol):
    """Where the metadata of a SAML provider comes from (the server reads and caches files)."""

    def get(self, provider: SamlProvider) -> SamlMetadata: ...


@dataclass(frozen=True, slots=True)
class ValidatedAssertion:
    """Values read from the signed assertion only."""

    issuer: str
    subject: str  # the NameID
    subject_type: str  # the NameID Format, urn:oasis:names:tc:SAML:2.0:nameid-format: stripped
    recipient: str  # SubjectConfirmationData/@Recipient (the response's Audience, saml:aud)
    audience: str  # the provider's audience, found in every AudienceRestriction
    attributes: dict[str, list[str]] = field(default_factory=dict)  # by Name, in order
    not_on_or_after: int | None = None  # AuthnStatement/@SessionNotOnOrAfter (epoch seconds)
    name_qualifier: str = ""  # base64(sha1(issuer + account + "/" + provider name))
    assertion_id: str = ""
    issue_instant: float = 0.0


def name_qualifier(issuer: str, account: str, provider_name: str) -> str:
    """AWS's NameQualifier: base64(sha1(issuer + accountId + "/" + providerName))."""
    digest = hashlib.sha1(f"{issuer}{account}/{provider_name}".encode()).digest()
    return base64.b64encode(digest).decode("ascii")


def subject_type(name_format: str | None) -> str:
    """The NameID Format with the SAML 2.0 prefix stripped; a missing Format is the SAML
    default, urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified (kept whole)."""
    fmt = (name_format or "").strip() or UNSPECIFIED_FORMAT
    return fmt.removeprefix(SUB_TYPE_PREFIX) if fmt.startswith(SUB_TYPE_PREFIX) else fmt


def _refuse(reason: str, message: str) -> InvalidIdentityToken:
    return InvalidIdentityToken(message, reason=reason)


def _expired(reason: str, message: str) -> ExpiredTokenException:
    return ExpiredTokenException(message, reason=reason)


# -- decoding and parsing ---------------------------------------------------------------------


def _decode(saml_response_b64: str, max_chars: int) -> bytes:
    if len(saml_response_b64) > max_chars:
        raise _refuse("too_large", f"The SAML response is larger than {max_chars} characters")
    if len(saml_response_b64) < 4:
        raise _refuse("malformed", "The SAML response is not valid base64")
    try:
        compact = _WHITESPACE.sub(b"", saml_response_b64.encode("ascii"))
        xml = base64.b64decode(compact, validate=True)
    except (UnicodeEncodeError, binascii.Error, ValueError) as e:
        raise _refuse("malformed", "The SAML response is not valid base64") from e
    if not xml.lstrip().startswith(b"<"):
        raise _refuse("malformed", "The SAML response is not XML")
    return xml


def _safe_parser() -> Any:
    """A fresh lxml parser that never loads a DTD, resolves an entity or touches the network."""
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)


def _parse(xml: bytes) -> Any:
    """defusedxml first (DTDs, entities and external references refused), then lxml."""
    try:
        DefusedET.fromstring(xml, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as e:
        raise _refuse(
            "malformed", "The SAML response must not contain a DTD or entity declarations"
        ) from e
    except (StdET.ParseError, ValueError) as e:
        raise _refuse("malformed", "The SAML response is not well-formed XML") from e
    try:
        return etree.fromstring(xml, parser=_safe_parser())
    except (etree.XMLSyntaxError, ValueError) as e:
        raise _refuse("malformed", "The SAML response is not well-formed XML") from e


def _text(element: Any) -> str:
    return "".join(str(t) for t in element.itertext()).strip() if element is not None else ""


def _attr(element: Any, name: str) -> str:
    value = element.get(name) if element is not None else None
    return str(value).strip() if value is not None else ""


def _is_element(node: Any) -> bool:
    return isinstance(node.tag, str)


# -- shape: exactly one assertion, in its place ------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Located:
    root: Any
    assertion: Any
    assertion_signed: bool
    response_signed: bool


def _locate(root: Any) -> _Located:
    if root.tag != RESPONSE:
        raise _refuse("malformed", "The SAML message must be a samlp:Response")
    if _attr(root, "Version") != "2.0":
        raise _refuse("malformed", "The SAML response must have Version 2.0")
    status = root.find("samlp:Status/samlp:StatusCode", NS)
    if status is None:
        raise _refuse("malformed", "The SAML response has no Status")
    if _attr(status, "Value") != SUCCESS:
        raise IDPRejectedClaim(
            f"The identity provider did not authenticate the user: {_attr(status, 'Value')}",
            reason="idp_rejected",
        )
    if any(True for _ in root.iter(ENCRYPTED_ASSERTION)):
        raise _refuse("malformed", "Encrypted assertions are not supported")
    assertions = list(root.iter(ASSERTION))
    if not assertions:
        raise _refuse("malformed", "The SAML response has no Assertion")
    if len(assertions) > 1:
        raise _refuse("wrapped", "The SAML response must contain exactly one Assertion")
    assertion = assertions[0]
    if assertion.getparent() is not root:
        raise _refuse("wrapped", "The Assertion must be a child of the Response")
    seen: set[str] = set()
    for element in root.iter():
        if not _is_element(element):
            continue
        for key, value in element.attrib.items():
            if etree.QName(key).localname not in _ID_ATTRIBUTES:
                continue
            if value in seen:
                raise _refuse("wrapped", f"The SAML response repeats the id {value!r}")
            seen.add(value)
    parents = [s.getparent() for s in root.iter(SIGNATURE)]
    misplaced = any(p is not root and p is not assertion for p in parents)
    if misplaced or len({id(p) for p in parents}) != len(parents):
        raise _refuse("wrapped", "A signature is in a place SAML does not put one")
    for node in assertion.iter():
        if not _is_element(node):
            raise _refuse(
                "malformed", "Comments and processing instructions are not allowed in an Assertion"
            )
    return _Located(
        root,
        assertion,
        assertion_signed=any(p is assertion for p in parents),
        response_signed=any(p is root for p in parents),
    )


# -- signatures -------------------------------------------------------------------------------


def _certificates(metadata: SamlMetadata) -> list[x509.Certificate]:
    certs = []
    for raw in metadata.certificates:
        try:
            if raw.lstrip().startswith(b"-----BEGIN"):
                certs.append(x509.load_pem_x509_certificate(raw))
            else:
                certs.append(x509.load_der_x509_certificate(raw))
        except ValueError as e:
            raise _refuse(
                "metadata", "The SAML provider metadata holds an invalid certificate"
            ) from e
    if not certs:
        raise _refuse("metadata", "The SAML provider metadata has no signing certificate")
    return certs


def _verified(xml: bytes, certs: list[x509.Certificate], location: str, now: float) -> Any:
    """The element signed by the signature at ``location``, verified against one of the
    metadata certificates (each valid at ``now``); bad_signature when none verifies it."""
    config = SignatureConfiguration(
        location=location,
        expect_references=1,
        verification_time=dt.datetime.fromtimestamp(now, tz=dt.UTC),
    )
    for cert in certs:
        try:
            result = XMLVerifier().verify(
                xml, x509_cert=cert, expect_config=config, parser=_safe_parser()
            )
        except Exception:
            continue  # any failure to verify means "not signed with this certificate"
        signed = getattr(result, "signed_xml", None)
        if signed is not None:
            return signed
    raise _refuse("bad_signature", SIGNATURE_INVALID)


def _signed_assertion(
    xml: bytes, where: _Located, certs: list[x509.Certificate], now: float
) -> Any:
    """The assertion as signed. Every signature present must verify; the one on the assertion
    is preferred, else the response's, which must then cover the one assertion in place."""
    expected_id = _attr(where.assertion, "ID")
    if not expected_id:
        raise _refuse("malformed", "The Assertion has no ID")
    signed_response = None
    if where.response_signed:
        signed_response = _verified(xml, certs, "./", now)
        if signed_response.tag != RESPONSE or _attr(signed_response, "ID") != _attr(
            where.root, "ID"
        ):
            raise _refuse("wrapped", "The response signature does not cover this Response")
    if where.assertion_signed:
        signed = _verified(xml, certs, f"./{{{SAML}}}Assertion/", now)
    elif signed_response is not None:
        inner = list(signed_response.iter(ASSERTION))
        if len(inner) != 1:
            raise _refuse("wrapped", "The signed Response must contain exactly one Assertion")
        signed = inner[0]
    else:
        raise _refuse("unsigned", "The SAML assertion is not signed")
    if signed.tag != ASSERTION or _attr(signed, "ID") != expected_id:
        raise _refuse("wrapped", "The signature does not cover the Assertion of this response")
    return signed


# -- times ------------------------------------------------------------------------------------


def parse_instant(text: str) -> float:
    """An xs:dateTime as epoch seconds (UTC when no offset is given); ValueError if invalid."""
    m = _INSTANT.match(text.strip())
    if m is None:
        raise ValueError(text)
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    fraction = float(m.group(7)) if m.group(7) else 0.0
    zone = m.group(8)
    tz = dt.UTC
    if zone and zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        tz = dt.timezone(sign * dt.timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6])))
    moment = dt.datetime(year, month, day, hour, minute, second, tzinfo=tz)
    return moment.timestamp() + fraction


def _instant(element: Any, name: str, required: bool = False) -> float | None:
    text = _attr(element, name)
    if not text:
        if required:
            raise _refuse("malformed", f"The SAML assertion has no {name}")
        return None
    try:
        return parse_instant(text)
    except ValueError as e:
        raise _refuse("malformed", f"{name} {text!r} is not a valid time") from e


def _window(element: Any, what: str, now: float, leeway: float) -> None:
    """NotBefore / NotOnOrAfter of Conditions or SubjectConfirmationData, with leeway."""
    not_before = _instant(element, "NotBefore")
    if not_before is not None and now + leeway < not_before:
        raise _refuse("not_yet_valid", f"The SAML assertion is not yet valid ({what} NotBefore)")
    not_after = _instant(element, "NotOnOrAfter")
    if not_after is not None and now - leeway >= not_after:
        raise _expired("expired", f"The SAML assertion has expired ({what} NotOnOrAfter)")


# -- the assertion ----------------------------------------------------------------------------


def _subject(a: Any, provider: SamlProvider) -> tuple[str, str, Any]:
    subject = a.find("saml:Subject", NS)
    name_id = subject.find("saml:NameID", NS) if subject is not None else None
    subject_text = _text(name_id)
    if subject is None or name_id is None or not subject_text:
        raise _refuse("malformed", "The SAML assertion has no Subject NameID")
    confirmations = subject.findall("saml:SubjectConfirmation", NS)
    if len(confirmations) != 1 or _attr(confirmations[0], "Method") != BEARER:
        raise _refuse(
            "malformed", "The SAML assertion must have exactly one bearer SubjectConfirmation"
        )
    data = confirmations[0].find("saml:SubjectConfirmationData", NS)
    if data is None or not _attr(data, "Recipient") or not _attr(data, "NotOnOrAfter"):
        raise _refuse(
            "malformed",
            "The SubjectConfirmationData must have a Recipient and a NotOnOrAfter",
        )
    recipient = _attr(data, "Recipient")
    if recipient != provider.recipient:
        raise _refuse(
            "wrong_recipient",
            f"The SAML assertion is for the Recipient {recipient!r}, not {provider.recipient!r}",
        )
    return subject_text, subject_type(name_id.get("Format")), data


def _check_audience(a: Any, provider: SamlProvider) -> None:
    restrictions = a.findall("saml:Conditions/saml:AudienceRestriction", NS)
    ok = bool(restrictions) and all(
        provider.audience in [_text(x) for x in r.findall("saml:Audience", NS)]
        for r in restrictions
    )
    if not ok:
        raise _refuse(
            "wrong_audience", f"The SAML assertion is not for the audience {provider.audience!r}"
        )


def _attributes(a: Any) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for attribute in a.findall("saml:AttributeStatement/saml:Attribute", NS):
        name = _attr(attribute, "Name")
        if not name:
            raise _refuse("malformed", "A SAML Attribute has no Name")
        values = out.setdefault(name, [])
        for value in attribute.findall("saml:AttributeValue", NS):
            if _attr(value, XSI_NIL) in ("true", "1"):
                continue
            values.append(_text(value))
    return out


def validate_assertion(
    saml_response_b64: str,
    provider: SamlProvider,
    metadata: SamlMetadata,
    now: float,
    *,
    leeway: float = 60,
    max_chars: int = MAX_CHARS,
) -> ValidatedAssertion:
    """Check a base64 SAML Response for ``provider`` and return what its signed assertion
    says. Raises InvalidIdentityToken / ExpiredTokenException / IDPRejectedClaim with a
    ``reason`` label."""
    xml = _decode(saml_response_b64, max_chars)
    where = _locate(_parse(xml))
    a = _signed_assertion(xml, where, _certificates(metadata), now)

    if _attr(a, "Version") != "2.0":
        raise _refuse("malformed", "The SAML assertion must have Version 2.0")
    issuer = _text(a.find("saml:Issuer", NS))
    if not issuer:
        raise _refuse("malformed", "The SAML assertion has no Issuer")
    response_issuer = where.root.find("saml:Issuer", NS)
    for value in (issuer, _text(response_issuer) if response_issuer is not None else issuer):
        if value != metadata.entity_id:
            raise _refuse(
                "wrong_issuer",
                f"The SAML assertion was issued by {value!r}, not {metadata.entity_id!r}",
            )
    destination = _attr(where.root, "Destination")
    if destination and destination != provider.recipient:
        raise _refuse(
            "wrong_recipient",
            f"The SAML response is for the Destination {destination!r}, not {provider.recipient!r}",
        )
    subject_text, sub_type, confirmation = _subject(a, provider)
    _check_audience(a, provider)

    issued = _instant(a, "IssueInstant", required=True)
    assert issued is not None
    if issued > now + leeway:
        raise _refuse("not_yet_valid", "The SAML assertion was issued in the future")
    if now - issued > MAX_AGE + leeway:
        raise _expired("too_old", TOO_OLD)
    conditions = a.find("saml:Conditions", NS)
    _window(conditions, "Conditions", now, leeway)
    _window(confirmation, "SubjectConfirmationData", now, leeway)

    session_ends = [
        t
        for statement in a.findall("saml:AuthnStatement", NS)
        if (t := _instant(statement, "SessionNotOnOrAfter")) is not None
    ]
    not_after = int(min(session_ends)) if session_ends else None
    if not_after is not None and not_after <= now:
        raise _expired("expired", "The SAML session has ended (SessionNotOnOrAfter)")

    return ValidatedAssertion(
        issuer=issuer,
        subject=subject_text,
        subject_type=sub_type,
        recipient=_attr(confirmation, "Recipient"),
        audience=provider.audience,
        attributes=_attributes(a),
        not_on_or_after=not_after,
        name_qualifier=name_qualifier(issuer, provider.account, provider.name),
        assertion_id=_attr(a, "ID"),
        issue_instant=issued,
    )


__all__ = [
    "MetadataLookup",
    "SamlMetadata",
    "ValidatedAssertion",
    "name_qualifier",
    "subject_type",
    "validate_assertion",
]

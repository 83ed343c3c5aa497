"""A SAML identity provider for tests: real keys, real signed responses, real metadata files.

Keys and self-signed certificates are made with ``cryptography``; responses are built with lxml
and their assertions (or the responses) signed with signxml's XMLSigner (enveloped, RSA-SHA256,
exclusive c14n), the way IdPs do it.
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from lxml import etree
from signxml import methods
from signxml.signer import XMLSigner

from sidecar.identity.model import SamlProvider, World
from sidecar.sts.clock import iso8601
from tests.sts.conftest import START
from tests.sts.world import ALICE, A, account, allow, doc, make_world, managed, role, trust_stmt

SAMLP = "urn:oasis:names:tc:SAML:2.0:protocol"
SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
DS = "http://www.w3.org/2000/09/xmldsig#"
MD = "urn:oasis:names:tc:SAML:2.0:metadata"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
SUCCESS = "urn:oasis:names:tc:SAML:2.0:status:Success"
BEARER = "urn:oasis:names:tc:SAML:2.0:cm:bearer"
PERSISTENT = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"

IDP_ENTITY = "https://idp.example.com/saml"
RECIPIENT = "https://signin.aws.amazon.com/saml"
AUDIENCE = "urn:amazon:webservices"
PROVIDER = "corp-idp"
PROVIDER_ARN = f"arn:aws:iam::{A}:saml-provider/{PROVIDER}"
OTHER_PROVIDER_ARN = f"arn:aws:iam::{A}:saml-provider/other-idp"
ATTR = "https://aws.amazon.com/SAML/Attributes/"
ROLE_ATTR = ATTR + "Role"
READER = f"arn:aws:iam::{A}:role/fed/saml-reader"
SUBJECT = "alice@example.com"
AFFILIATION_OID = "urn:oid:1.3.6.1.4.1.5923.1.1.1.1"


# -- keys and metadata --------------------------------------------------------------------------


@dataclass(frozen=True)
class Idp:
    key: rsa.RSAPrivateKey
    cert: x509.Certificate

    @property
    def der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)


def make_idp(
    cn: str = "idp.example.com",
    not_before: float = START - 365 * 86400,
    not_after: float = START + 365 * 86400,
) -> Idp:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(dt.datetime.fromtimestamp(not_before, tz=dt.UTC))
        .not_valid_after(dt.datetime.fromtimestamp(not_after, tz=dt.UTC))
        .sign(key, hashes.SHA256())
    )
    return Idp(key, cert)


def metadata_xml(
    entity_id: str, certs: list[x509.Certificate], use: str | None = "signing"
) -> bytes:
    """An IdP metadata document (EntityDescriptor / IDPSSODescriptor / KeyDescriptor)."""
    root = etree.Element(f"{{{MD}}}EntityDescriptor", nsmap={"md": MD, "ds": DS})
    root.set("entityID", entity_id)
    idp = etree.SubElement(root, f"{{{MD}}}IDPSSODescriptor")
    idp.set("protocolSupportEnumeration", SAMLP)
    for cert in certs:
        kd = etree.SubElement(idp, f"{{{MD}}}KeyDescriptor")
        if use is not None:
            kd.set("use", use)
        data = etree.SubElement(etree.SubElement(kd, f"{{{DS}}}KeyInfo"), f"{{{DS}}}X509Data")
        der = cert.public_bytes(serialization.Encoding.DER)
        etree.SubElement(data, f"{{{DS}}}X509Certificate").text = base64.b64encode(der).decode()
    sso = etree.SubElement(idp, f"{{{MD}}}SingleSignOnService")
    sso.set("Binding", "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect")
    sso.set("Location", "https://idp.example.com/sso")
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def write_metadata(path: Path, entity_id: str, certs: list[x509.Certificate]) -> Path:
    path.write_bytes(metadata_xml(entity_id, certs))
    return path


# -- responses --------------------------------------------------------------------------------


def default_attributes() -> dict[str, list[str]]:
    return {
        ROLE_ATTR: [f"{READER},{PROVIDER_ARN}"],
        ATTR + "RoleSessionName": [SUBJECT],
    }


@dataclass
class Claims:
    """What a response says. Times default to ``now`` (issue) and five minutes after it."""

    now: float = START
    issuer: str = IDP_ENTITY
    response_issuer: str | None = IDP_ENTITY
    name_id: str = SUBJECT
    name_id_format: str | None = PERSISTENT
    recipient: str = RECIPIENT
    destination: str | None = RECIPIENT
    audiences: tuple[str, ...] = (AUDIENCE,)
    issue_instant: float | None = None
    not_before: float | None = None
    not_on_or_after: float | None = None
    scd_not_on_or_after: float | None = None
    session_not_on_or_after: float | None = None
    attributes: dict[str, list[str]] = field(default_factory=default_attributes)
    status: str = SUCCESS
    assertion_id: str = "_assertion-1"
    response_id: str = "_response-1"

    def with_attributes(self, **extra: list[str]) -> Claims:
        """Add AWS attributes by short name (RoleSessionName=..., PrincipalTag_team=...)."""
        attrs = dict(self.attributes)
        for short, values in extra.items():
            attrs[ATTR + short.replace("PrincipalTag_", "PrincipalTag:")] = values
        return dataclasses.replace(self, attributes=attrs)


def _sub(parent: Any, ns: str, tag: str, text: str | None = None, **attrs: str) -> Any:
    el = etree.SubElement(parent, f"{{{ns}}}{tag}")
    for k, v in attrs.items():
        el.set(k, v)
    if text is not None:
        el.text = text
    return el


def _placeholder(parent: Any) -> None:
    etree.SubElement(parent, f"{{{DS}}}Signature", nsmap={"ds": DS}).set("Id", "placeholder")


def build_assertion(c: Claims, placeholder: bool = True) -> Any:
    issued = c.now if c.issue_instant is None else c.issue_instant
    a = etree.Element(f"{{{SAML}}}Assertion", nsmap={"saml": SAML, "xsi": XSI})
    a.set("ID", c.assertion_id)
    a.set("Version", "2.0")
    a.set("IssueInstant", iso8601(issued))
    _sub(a, SAML, "Issuer", c.issuer)
    if placeholder:
        _placeholder(a)
    subject = _sub(a, SAML, "Subject")
    name_id = _sub(subject, SAML, "NameID", c.name_id)
    if c.name_id_format is not None:
        name_id.set("Format", c.name_id_format)
    conf = _sub(subject, SAML, "SubjectConfirmation", Method=BEARER)
    scd_end = issued + 300 if c.scd_not_on_or_after is None else c.scd_not_on_or_after
    _sub(
        conf, SAML, "SubjectConfirmationData", Recipient=c.recipient, NotOnOrAfter=iso8601(scd_end)
    )
    conditions = _sub(
        a,
        SAML,
        "Conditions",
        NotBefore=iso8601(issued - 5 if c.not_before is None else c.not_before),
        NotOnOrAfter=iso8601(issued + 300 if c.not_on_or_after is None else c.not_on_or_after),
    )
    restriction = _sub(conditions, SAML, "AudienceRestriction")
    for audience in c.audiences:
        _sub(restriction, SAML, "Audience", audience)
    authn = _sub(a, SAML, "AuthnStatement", AuthnInstant=iso8601(issued))
    if c.session_not_on_or_after is not None:
        authn.set("SessionNotOnOrAfter", iso8601(c.session_not_on_or_after))
    context = _sub(authn, SAML, "AuthnContext")
    _sub(
        context,
        SAML,
        "AuthnContextClassRef",
        "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport",
    )
    if c.attributes:
        statement = _sub(a, SAML, "AttributeStatement")
        for name, values in c.attributes.items():
            attribute = _sub(statement, SAML, "Attribute", Name=name)
            for value in values:
                _sub(attribute, SAML, "AttributeValue", value)
    return a


def sign(element: Any, idp: Idp) -> Any:
    """Enveloped RSA-SHA256 signature at the element's placeholder, referencing its ID."""
    signer = XMLSigner(
        method=methods.enveloped,
        signature_algorithm="rsa-sha256",
        digest_algorithm="sha256",
        c14n_algorithm="http://www.w3.org/2001/10/xml-exc-c14n#",
    )
    return signer.sign(element, key=idp.key, cert=[idp.cert], reference_uri="#" + element.get("ID"))


def build_response(
    c: Claims,
    idp: Idp | None,
    *,
    sign_response: Idp | None = None,
    assertion: Any = None,
) -> Any:
    """A samlp:Response holding the assertion, signed by ``idp`` (None: unsigned), and the
    whole response signed too when ``sign_response`` is given."""
    r = etree.Element(f"{{{SAMLP}}}Response", nsmap={"samlp": SAMLP, "saml": SAML})
    r.set("ID", c.response_id)
    r.set("Version", "2.0")
    r.set("IssueInstant", iso8601(c.now if c.issue_instant is None else c.issue_instant))
    if c.destination is not None:
        r.set("Destination", c.destination)
    if c.response_issuer is not None:
        _sub(r, SAML, "Issuer", c.response_issuer)
    if sign_response is not None:
        _placeholder(r)
    status = _sub(r, SAMLP, "Status")
    _sub(status, SAMLP, "StatusCode", Value=c.status)
    if assertion is None:
        assertion = build_assertion(c, placeholder=idp is not None)
        if idp is not None:
            assertion = sign(assertion, idp)
    r.append(assertion)
    if sign_response is not None:
        r = sign(r, sign_response)
    return r


def encode(element: Any) -> str:
    return base64.b64encode(etree.tostring(element)).decode("ascii")


def encode_text(xml: str | bytes) -> str:
    data = xml.encode() if isinstance(xml, str) else xml
    return base64.b64encode(data).decode("ascii")


def response_b64(c: Claims, idp: Idp | None, **kw: Any) -> str:
    return encode(build_response(c, idp, **kw))


def find(element: Any, path: str) -> Any:
    return element.find(path, {"samlp": SAMLP, "saml": SAML, "ds": DS})


def clone(element: Any) -> Any:
    return copy.deepcopy(element)


# -- the world --------------------------------------------------------------------------------

SAML_ACTIONS = ["sts:AssumeRoleWithSAML", "sts:TagSession", "sts:SetSourceIdentity"]


def _fed(actions: Any = "sts:AssumeRoleWithSAML", **extra: Any) -> dict[str, Any]:
    return trust_stmt({"Federated": PROVIDER_ARN}, actions, **extra)


def saml_world(metadata_file: Path, other_metadata_file: Path | None = None) -> World:
    """Account A with the corp-idp provider (and other-idp), and roles trusting it."""
    read_all = managed(A, "S3ReadAll", doc(allow("s3:GetObject")))
    roles = [
        role(
            A,
            "saml-reader",
            doc(_fed(SAML_ACTIONS, Condition={"StringEquals": {"SAML:aud": RECIPIENT}})),
            path="/fed/",
            inline={"read": doc(allow(["s3:GetObject", "s3:ListBucket"]))},
            tags={"team": "payments"},
            max_session=43200,
        ),
        role(A, "saml-basic", doc(_fed()), max_session=7200),
        role(
            A,
            "saml-sub",
            doc(_fed(Condition={"StringEquals": {"saml:sub": SUBJECT, "saml:iss": IDP_ENTITY}})),
        ),
        role(
            A,
            "saml-other-aud",
            doc(_fed(Condition={"StringEquals": {"saml:aud": "https://other.example/saml"}})),
        ),
        role(
            A,
            "saml-staff",
            doc(
                _fed(
                    Condition={
                        "ForAnyValue:StringEquals": {"saml:edupersonaffiliation": "staff"},
                        "StringEquals": {
                            "saml:doc": f"{A}/{PROVIDER}",
                            "saml:sub_type": "persistent",
                        },
                    }
                )
            ),
        ),
        role(
            A,
            "saml-other-idp",
            doc(trust_stmt({"Federated": OTHER_PROVIDER_ARN}, "sts:AssumeRoleWithSAML")),
        ),
        role(A, "users-only", doc(trust_stmt({"AWS": ALICE}))),
    ]
    acct = account(A, roles, policies=[read_all])
    providers = {PROVIDER_ARN: SamlProvider(A, PROVIDER, PROVIDER_ARN, str(metadata_file))}
    if other_metadata_file is not None:
        providers[OTHER_PROVIDER_ARN] = SamlProvider(
            A, "other-idp", OTHER_PROVIDER_ARN, str(other_metadata_file)
        )
    acct = dataclasses.replace(acct, saml_providers=providers)
    return make_world([acct])

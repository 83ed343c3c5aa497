"""The STS Query API's XML documents: results and errors as AWS writes them (namespace
``https://sts.amazonaws.com/doc/2011-06-15/``, members named as in the AWS STS API Reference).
ElementTree escapes every text; empty optional members are left out, as AWS leaves them out."""

from __future__ import annotations

from datetime import UTC, datetime
from xml.etree import ElementTree as ET

from sidecar.sts.assume import AssumeRoleResult, CallerIdentity

NAMESPACE = "https://sts.amazonaws.com/doc/2011-06-15/"

Members = list[tuple[str, "str | int | ET.Element | None"]]


def iso8601(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _element(name: str, members: Members) -> ET.Element:
    out = ET.Element(name)
    for key, value in members:
        if value is None or value == "":
            continue
        if isinstance(value, ET.Element):
            out.append(value)
        else:
            ET.SubElement(out, key).text = str(value)
    return out


def _document(root: ET.Element) -> bytes:
    out: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=False)
    return out


def role_members(result: AssumeRoleResult) -> Members:
    """Credentials, AssumedRoleUser and PackedPolicySize (sent when policies or tags were)."""
    c = result.credentials
    credentials = _element(
        "Credentials",
        [
            ("AccessKeyId", c.access_key_id),
            ("SecretAccessKey", c.secret_access_key),
            ("SessionToken", c.session_token),
            ("Expiration", iso8601(c.expiration)),
        ],
    )
    user = _element(
        "AssumedRoleUser", [("AssumedRoleId", result.assumed_role_id), ("Arn", result.arn)]
    )
    packed = result.packed_policy_size or None
    return [("Credentials", credentials), ("AssumedRoleUser", user), ("PackedPolicySize", packed)]


def response(action: str, members: Members, request_id: str) -> bytes:
    """``<{action}Response><{action}Result>…</…Result><ResponseMetadata>…``."""
    root = ET.Element(f"{action}Response", xmlns=NAMESPACE)
    root.append(_element(f"{action}Result", members))
    root.append(_element("ResponseMetadata", [("RequestId", request_id)]))
    return _document(root)


def caller_identity_members(ident: CallerIdentity) -> Members:
    return [("UserId", ident.user_id), ("Account", ident.account), ("Arn", ident.arn)]


def error_document(code: str, message: str, request_id: str, *, sender: bool = True) -> bytes:
    """``<ErrorResponse><Error><Type>Sender</Type><Code>…</Code><Message>…</Message></Error>
    <RequestId>…</RequestId></ErrorResponse>``."""
    root = ET.Element("ErrorResponse", xmlns=NAMESPACE)
    error = _element(
        "Error",
        [("Type", "Sender" if sender else "Receiver"), ("Code", code), ("Message", message)],
    )
    root.append(error)
    ET.SubElement(root, "RequestId").text = request_id
    return _document(root)

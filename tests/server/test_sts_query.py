"""The STS Query API's wire on the HTTP port, request by request: the XML documents, the
refusals of the action, version and unsupported parameters, SigV4 on HTTP, the body limit, SAML,
and the metrics shared with the gRPC port."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlencode
from xml.etree import ElementTree as ET

import aiohttp
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from prometheus_client import generate_latest

from sidecar import errors
from sidecar.errors import SignatureDoesNotMatch
from sidecar.server.app import Sidecar
from sidecar.server.sigv4 import SignedRequest, verify_request
from sidecar.server.sts_query import MAX_BODY_BYTES, error_answer, parse_form
from sidecar.server.sts_xml import NAMESPACE
from tests.server.conftest import APP_READER, DEMO_KEY, OffsetClock
from tests.server.test_federation_rpc import serve
from tests.sts.federation import saml_world as saml

NS = {"s": NAMESPACE}
FORM = "application/x-www-form-urlencoded; charset=utf-8"
Answer = tuple[int, ET.Element, dict[str, str]]


def sign(
    url: str,
    body: str,
    *,
    service: str = "sts",
    key: tuple[str, str] = DEMO_KEY,
    headers: dict[str, str] | None = None,
) -> dict[str, str]:
    all_headers = {"Content-Type": FORM, **(headers or {})}
    request = AWSRequest("POST", url, data=body.encode(), headers=all_headers)
    SigV4Auth(Credentials(*key), service, "eu-west-3").add_auth(request)
    return dict(request.headers.items())


async def post(port: int, fields: dict[str, str], *, signed: bool = True, **kw: object) -> Answer:
    url = f"http://127.0.0.1:{port}/"
    body = urlencode(fields)
    headers = sign(url, body, **kw) if signed else {"Content-Type": FORM}  # type: ignore[arg-type]
    async with (
        aiohttp.ClientSession() as http,
        http.post(url, data=body.encode(), headers=headers) as resp,
    ):
        text = await resp.read()
        return resp.status, ET.fromstring(text), dict(resp.headers)


def error(root: ET.Element) -> tuple[str, str, str]:
    assert root.tag == f"{{{NAMESPACE}}}ErrorResponse"
    kind = root.findtext("s:Error/s:Type", namespaces=NS) or ""
    code = root.findtext("s:Error/s:Code", namespaces=NS) or ""
    return kind, code, root.findtext("s:Error/s:Message", namespaces=NS) or ""


ASSUME = {"Action": "AssumeRole", "Version": "2011-06-15", "RoleArn": APP_READER}


async def test_assume_role_document(sidecar: Sidecar) -> None:
    """AWS's AssumeRoleResponse: Credentials, AssumedRoleUser, PackedPolicySize (tags were
    sent), RequestId (the same as the x-amzn-RequestId header); the API counted in the metrics."""
    status, root, headers = await post(
        sidecar.http_port,
        {
            **ASSUME,
            "RoleSessionName": "s1",
            "Tags.member.1.Key": "project",
            "Tags.member.1.Value": "atlas",
        },
    )
    assert status == 200, ET.tostring(root)
    assert root.tag == f"{{{NAMESPACE}}}AssumeRoleResponse"
    result = root.find("s:AssumeRoleResult", NS)
    assert result is not None
    creds = result.find("s:Credentials", NS)
    assert creds is not None
    assert [c.tag.split("}")[1] for c in creds] == [
        "AccessKeyId", "SecretAccessKey", "SessionToken", "Expiration"
    ]  # fmt: skip
    assert (creds.findtext("s:Expiration", namespaces=NS) or "").endswith("Z")
    arn = result.findtext("s:AssumedRoleUser/s:Arn", namespaces=NS)
    assert arn == "arn:aws:sts::111111111111:assumed-role/app-reader/s1"
    assert result.find("s:SourceIdentity", NS) is None  # none asked for: left out, as at AWS
    assert int(result.findtext("s:PackedPolicySize", namespaces=NS) or 0) > 0
    request_id = root.findtext("s:ResponseMetadata/s:RequestId", namespaces=NS)
    assert request_id
    assert headers["x-amzn-RequestId"] == request_id
    metrics = generate_latest(sidecar.metrics.registry).decode()
    assert 'iam_sidecar_credentials_issued_total{api="AssumeRole"} 1.0' in metrics


async def test_get_caller_identity_document(sidecar: Sidecar) -> None:
    fields = {"Action": "GetCallerIdentity", "Version": "2011-06-15"}
    status, root, _ = await post(sidecar.http_port, fields)
    assert status == 200
    result = root.find("s:GetCallerIdentityResult", NS)
    assert result is not None
    assert [c.tag.split("}")[1] for c in result] == ["UserId", "Account", "Arn"]
    assert result.findtext("s:Arn", namespaces=NS) == "arn:aws:iam::111111111111:user/alice"


@pytest.mark.parametrize(
    ("fields", "status", "code", "words"),
    [
        ({"Action": "GetSessionToken", "Version": "2011-06-15"}, 400, "InvalidAction",
         "Could not find operation GetSessionToken for version 2011-06-15"),
        ({"Action": "GetCallerIdentity"}, 400, "InvalidAction",
         "Could not find operation GetCallerIdentity for version NO_VERSION_SPECIFIED"),
        ({"Action": "GetCallerIdentity", "Version": "2010-01-01"}, 400, "InvalidAction",
         "for version 2010-01-01"),
        ({"Version": "2011-06-15"}, 400, "MissingAction", "Missing Action"),
        ({**ASSUME, "RoleSessionName": "s1", "ProvidedContexts.member.1.ProviderArn": "arn:x"},
         400, "ValidationError", "'ProvidedContexts' is not supported"),
        ({**ASSUME, "RoleSessionName": "s1", "MinimumSessionTokenSize": "4096"},
         400, "ValidationError", "'MinimumSessionTokenSize' is not supported"),
        ({**ASSUME, "RoleSessionName": "s1", "DurationSeconds": "an hour"},
         400, "ValidationError", "at 'durationSeconds' failed to satisfy constraint"),
        ({**ASSUME, "RoleSessionName": "s1", "DurationSeconds": "0"}, 400, "ValidationError",
         "Value '0' at 'durationSeconds' failed to satisfy constraint: Member must have value "
         "greater than or equal to 900"),
        ({**ASSUME, "RoleSessionName": "s1", "Tags.member.1.Key": "k"},
         400, "ValidationError", "Value null at 'tags.1.member.value'"),
        ({**ASSUME, "RoleSessionName": "s1", "Tags.member.x.Key": "k"},
         400, "ValidationError", "'Tags.member.x.Key' is not a valid member of 'Tags'"),
        ({**ASSUME, "RoleSessionName": "s1", "Policy": "{"},
         400, "MalformedPolicyDocument", ""),
        ({**ASSUME, "RoleArn": "arn:aws:iam::111111111111:role/nope", "RoleSessionName": "s1"},
         403, "AccessDenied", "is not authorized to perform: sts:AssumeRole"),
    ],
)  # fmt: skip
async def test_refusals_are_aws_error_documents(
    sidecar: Sidecar, fields: dict[str, str], status: int, code: str, words: str
) -> None:
    got, root, headers = await post(sidecar.http_port, fields)
    kind, got_code, message = error(root)
    assert (got, kind, got_code) == (status, "Sender", code), message
    assert words in message
    assert root.findtext("s:RequestId", namespaces=NS) == headers["x-amzn-RequestId"]


async def test_signed_actions_need_a_signature(sidecar: Sidecar) -> None:
    """AssumeRole and GetCallerIdentity unsigned: MissingAuthenticationToken, 403."""
    for action in ("AssumeRole", "GetCallerIdentity"):
        fields = {**ASSUME, "Action": action, "RoleSessionName": "s1"}
        status, root, _ = await post(sidecar.http_port, fields, signed=False)
        assert (status, error(root)[1]) == (403, "MissingAuthenticationToken")


async def test_signature_scoped_to_another_service(sidecar: Sidecar) -> None:
    fields = {"Action": "GetCallerIdentity", "Version": "2011-06-15"}
    status, root, _ = await post(sidecar.http_port, fields, service="s3")
    _, code, message = error(root)
    assert (status, code) == (403, "SignatureDoesNotMatch")
    assert "'sts'" in message


async def test_signature_outside_five_minutes(sidecar: Sidecar, clock: OffsetClock) -> None:
    clock.offset = 301
    fields = {"Action": "GetCallerIdentity", "Version": "2011-06-15"}
    status, root, _ = await post(sidecar.http_port, fields)
    _, code, message = error(root)
    assert (status, code) == (403, "SignatureDoesNotMatch")
    assert message.startswith("Signature expired")


async def test_signed_extra_header_must_match(sidecar: Sidecar) -> None:
    """Any header the request carries may be signed; changing one after signing is refused."""
    url = f"http://127.0.0.1:{sidecar.http_port}/"
    body = urlencode({"Action": "GetCallerIdentity", "Version": "2011-06-15"})
    headers = sign(url, body, headers={"X-Trace": "abc"})
    async with aiohttp.ClientSession() as http:
        async with http.post(url, data=body.encode(), headers=headers) as resp:
            assert resp.status == 200
        async with http.post(url, data=body.encode(), headers={**headers, "X-Trace": "x"}) as r:
            assert r.status == 403
            assert error(ET.fromstring(await r.read()))[1] == "SignatureDoesNotMatch"


async def test_wrong_content_type(sidecar: Sidecar) -> None:
    url = f"http://127.0.0.1:{sidecar.http_port}/"
    async with (
        aiohttp.ClientSession() as http,
        http.post(url, data=b"{}", headers={"Content-Type": "application/json"}) as resp,
    ):
        assert resp.status == 400
        assert error(ET.fromstring(await resp.read()))[1] == "ValidationError"


def test_verify_request_checks_a_signed_content_hash() -> None:
    """botocore signs x-amz-content-sha256 instead of hashing the body: it must be the body's."""
    url, body = "http://sts.local/?a=1", b"Action=GetCallerIdentity"
    now = time.time()
    request = AWSRequest("POST", url, data=body, headers={"X-Amz-Content-SHA256": "0" * 64})
    SigV4Auth(Credentials(*DEMO_KEY), "sts", "us-east-1").add_auth(request)
    headers = [("Host", "sts.local"), *request.headers.items()]
    with pytest.raises(SignatureDoesNotMatch, match="x-amz-content-sha256"):
        verify_request(SignedRequest("POST", url, headers, body), lambda *_: DEMO_KEY[1], now)


def test_duplicate_form_fields_are_refused() -> None:
    with pytest.raises(Exception, match="more than once"):
        parse_form(b"Action=A&Action=B")


@pytest.fixture
async def saml_server(tmp_path: Path) -> AsyncIterator[tuple[Sidecar, saml.Idp]]:
    idp = saml.make_idp()
    metadata = saml.write_metadata(tmp_path / "idp.xml", saml.IDP_ENTITY, [idp.cert])
    server = await serve(saml.saml_world(metadata))
    try:
        yield server, idp
    finally:
        await server.drain()


async def test_assume_role_with_saml_unsigned_request(
    saml_server: tuple[Sidecar, saml.Idp],
) -> None:
    """A signed assertion alone (no SigV4) gets credentials and AWS's SAML result members."""
    server, idp = saml_server
    claims = saml.Claims()
    claims.attributes[saml.ROLE_ATTR] = [f"{saml.READER},{saml.PROVIDER_ARN}"]
    fields = {
        "Action": "AssumeRoleWithSAML",
        "Version": "2011-06-15",
        "RoleArn": saml.READER,
        "PrincipalArn": saml.PROVIDER_ARN,
        "SAMLAssertion": saml.response_b64(claims, idp),
    }
    status, root, _ = await post(server.http_port, fields, signed=False)
    assert status == 200, ET.tostring(root)
    result = root.find("s:AssumeRoleWithSAMLResult", NS)
    assert result is not None
    assert result.findtext("s:Subject", namespaces=NS) == saml.SUBJECT
    assert result.findtext("s:Issuer", namespaces=NS) == saml.IDP_ENTITY
    assert result.findtext("s:Audience", namespaces=NS) == saml.RECIPIENT
    assert result.findtext("s:NameQualifier", namespaces=NS)
    assert result.findtext("s:Credentials/s:SessionToken", namespaces=NS)


async def test_body_limit_fits_a_maximal_saml_assertion(
    saml_server: tuple[Sidecar, saml.Idp],
) -> None:
    """100,000 characters of base64, each one form-encoded as %2B, reach the SAML code (which
    refuses them as no assertion) instead of being cut off by the body limit."""
    server, _ = saml_server
    fields = {
        "Action": "AssumeRoleWithSAML",
        "Version": "2011-06-15",
        "RoleArn": saml.READER,
        "PrincipalArn": saml.PROVIDER_ARN,
        "SAMLAssertion": "+" * 100_000,
    }
    assert len(urlencode(fields)) > 300_000
    status, root, _ = await post(server.http_port, fields, signed=False)
    assert status == 400
    assert error(root)[1:] == ("InvalidIdentityToken", "The SAML response is not XML")
    assert len(urlencode(fields)) <= MAX_BODY_BYTES


@pytest.mark.parametrize(
    ("err", "status"),
    [
        (errors.ValidationError("m"), 400),
        (errors.MalformedPolicyDocument("m"), 400),
        (errors.PackedPolicyTooLarge("m"), 400),
        (errors.LimitExceeded("m"), 400),
        (errors.AccessDenied("m"), 403),
        (errors.NoSuchEntity("m"), 404),
        (errors.ThrottlingException("m"), 400),
        (errors.ExpiredToken("m", reason="expired"), 403),
        (errors.InvalidClientTokenId("m", reason="unknown_key"), 403),
        (errors.SignatureDoesNotMatch("m", reason="mismatch"), 403),
        (errors.MissingAuthenticationToken("m", reason="missing"), 403),
        (errors.InvalidIdentityToken("m", reason="bad_signature"), 400),
        (errors.ExpiredTokenException("m", reason="expired"), 400),
        (errors.IDPRejectedClaim("m", reason="claim"), 403),
        (errors.IDPCommunicationError("m", reason="unreachable"), 400),
    ],
)
def test_every_code_has_awss_status_and_document(err: errors.SidecarError, status: int) -> None:
    got, doc = error_answer(err, "rid-1")
    root = ET.fromstring(doc)
    assert got == status
    assert error(root) == ("Sender", err.code, "m")
    assert root.findtext("s:RequestId", namespaces=NS) == "rid-1"


def test_unexpected_failure_is_an_internal_failure_that_says_no_more() -> None:
    status, doc = error_answer(KeyError("secret detail"), "rid-2")
    assert status == 500
    assert error(ET.fromstring(doc)) == ("Receiver", "InternalFailure", "internal error")


def test_error_text_is_escaped() -> None:
    _, doc = error_answer(errors.ValidationError("a <b> & 'c' ]]>"), "rid-3")
    assert error(ET.fromstring(doc))[2] == "a <b> & 'c' ]]>"
    assert b"<b>" not in doc


async def test_assume_role_with_policy_arns(sidecar: Sidecar) -> None:
    """PolicyArns.member.N.arn reaches the core: an unknown managed policy is refused."""
    fields = {
        **ASSUME,
        "RoleSessionName": "s1",
        "PolicyArns.member.1.arn": "arn:aws:iam::111111111111:policy/ReportsRead",
    }
    status, root, _ = await post(sidecar.http_port, fields)
    assert status == 200, ET.tostring(root)
    fields["PolicyArns.member.2.arn"] = "arn:aws:iam::111111111111:policy/NoSuchPolicy"
    status, root, _ = await post(sidecar.http_port, fields)
    assert status != 200
    assert "NoSuchPolicy" in error(root)[2]


async def test_credentials_are_counted_and_logged_alike_on_both_wires(
    sidecar: Sidecar, caplog: pytest.LogCaptureFixture
) -> None:
    """An AssumeRole over the STS Query API and one over gRPC: the same counter, and the same
    log line, each naming its wire."""
    from sidecar.client import AsyncClient

    caplog.set_level("INFO", logger="iam_sidecar.server")
    status, root, _ = await post(sidecar.http_port, {**ASSUME, "RoleSessionName": "by-query"})
    assert status == 200, ET.tostring(root)
    async with AsyncClient(
        f"127.0.0.1:{sidecar.grpc_port}", access_key_id=DEMO_KEY[0], secret_access_key=DEMO_KEY[1]
    ) as client:
        await client.assume_role(APP_READER, "by-grpc")
    text = generate_latest(sidecar.metrics.registry).decode()
    assert 'iam_sidecar_credentials_issued_total{api="AssumeRole"} 2.0' in text
    lines = [r for r in caplog.records if r.getMessage() == "assumed role"]
    assert sorted((r.wire, r.session.rsplit("/", 1)[-1]) for r in lines) == [  # type: ignore[attr-defined]
        ("grpc", "by-grpc"),
        ("query", "by-query"),
    ]

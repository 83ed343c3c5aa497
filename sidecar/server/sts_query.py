"""The STS Query API on the HTTP port: ``POST /`` with a form-encoded ``Action=…&Version=
2011-06-15`` (docs/API.md, "The STS Query API"), what unmodified AWS SDKs send to an STS
endpoint (``AWS_ENDPOINT_URL_STS``).

The form becomes the same parameter objects the gRPC port builds, and the same STS core
(sidecar/sts) answers; results and errors leave as AWS's XML documents (sts_xml.py) with AWS's
HTTP statuses. AssumeRole and GetCallerIdentity must be SigV4-signed (the gRPC port's verifier,
sigv4.py, with the request as received, credential scope service ``sts``);
AssumeRoleWithWebIdentity and AssumeRoleWithSAML are authenticated by their token or assertion,
as at AWS. A parameter the sidecar does not implement is refused, never ignored.
"""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qsl

from aiohttp import web

from sidecar.errors import (
    FederationError,
    MissingAuthenticationToken,
    SidecarError,
    SignatureDoesNotMatch,
    TokenError,
    ValidationError,
    validation_errors,
    violation,
)
from sidecar.server import sts_xml
from sidecar.server.servicers import ServerDeps, Services
from sidecar.server.sigv4 import SignedRequest, verify_request, world_lookup
from sidecar.server.status import bounded_message
from sidecar.sts.assume import AssumeRoleParams, assume_role, get_caller_identity
from sidecar.sts.callers import Caller
from sidecar.sts.federation.saml_assume import SamlParams, assume_role_with_saml
from sidecar.sts.federation.web_identity import WebIdentityParams, assume_role_with_web_identity

log = logging.getLogger("iam_sidecar.server")

VERSION = "2011-06-15"
SERVICE = "sts"
# A SAML assertion may be 100,000 characters of base64, each of which form encoding may triple
# (%2B, %2F, %3D); plus a 2,048-character policy and ten policy ARNs, tripled too.
MAX_BODY_BYTES = 384 * 1024
FORM = "application/x-www-form-urlencoded"

# AWS's HTTP status for each error code (the AWS STS API Reference, "Errors" of each action and
# "Common Errors"); a code not listed is a sender's error, 400.
STATUS = {
    "AccessDenied": 403,
    "ExpiredToken": 403,
    "InvalidClientTokenId": 403,
    "SignatureDoesNotMatch": 403,
    "MissingAuthenticationToken": 403,
    "IDPRejectedClaim": 403,
    "NoSuchEntity": 404,
    "InternalFailure": 500,
}
# Parameters AWS has for these actions that the sidecar does not implement.
UNSUPPORTED = ("ProvidedContexts", "MinimumSessionTokenSize")
_MEMBER = re.compile(r"(?P<list>[A-Za-z]+)\.member\.(?P<n>[0-9]{1,3})(?:\.(?P<field>[A-Za-z]+))?")


class InvalidAction(SidecarError):
    code = "InvalidAction"


class MissingAction(SidecarError):
    code = "MissingAction"


Form = dict[str, str]


def parse_form(body: bytes) -> Form:
    """The form's fields; a field given twice, or a body that is not UTF-8, is refused."""
    try:
        text = body.decode("utf-8")
        pairs = parse_qsl(text, keep_blank_values=True, errors="strict")
    except (UnicodeDecodeError, ValueError):
        raise ValidationError("The request body is not a UTF-8 form.") from None
    form: Form = {}
    for name, value in pairs:
        if name in form:
            raise ValidationError(f"The parameter '{name}' is given more than once.")
        form[name] = value
    return form


def _check_action(form: Form) -> str:
    action = form.get("Action", "")
    if not action:
        raise MissingAction("Missing Action")
    version = form.get("Version") or "NO_VERSION_SPECIFIED"
    if version != VERSION or action not in ACTIONS:
        raise InvalidAction(
            bounded_message(f"Could not find operation {action} for version {version}", 256)
        )
    for name in form:
        if name.split(".", 1)[0] in UNSUPPORTED:
            raise ValidationError(
                f"The parameter '{name.split('.', 1)[0]}' is not supported by this STS endpoint."
            )
    return action


def _members(form: Form, name: str, fields: tuple[str, ...]) -> list[dict[str, str]]:
    """``Name.member.N[.Field]`` entries in N order; ``fields`` empty means a list of strings
    (returned under the key ``""``)."""
    found: dict[int, dict[str, str]] = {}
    for key, value in form.items():
        if not key.startswith(name + "."):
            continue
        m = _MEMBER.fullmatch(key)
        field = (m.group("field") or "") if m else None
        if m is None or m.group("list") != name or field not in (fields or ("",)):
            raise ValidationError(f"The parameter '{key}' is not a valid member of '{name}'.")
        n = int(m.group("n"))
        if n < 1:
            raise ValidationError(f"The parameter '{key}' has a member index below 1.")
        found.setdefault(n, {})[field or ""] = value
    return [found[n] for n in sorted(found)]


def _duration(form: Form) -> int:
    text = form.get("DurationSeconds", "")
    if not text:
        return 0
    if not re.fullmatch(r"-?[0-9]{1,10}", text):
        raise validation_errors([violation("durationSeconds", "Member must be an integer", text)])
    if int(text) == 0:  # the core reads 0 as "not given": given, it is below the minimum
        minimum = "Member must have value greater than or equal to 900"
        raise validation_errors([violation("durationSeconds", minimum, 0)])
    return int(text)


def _policy_arns(form: Form) -> tuple[str, ...]:
    out = []
    for i, entry in enumerate(_members(form, "PolicyArns", ("arn",)), start=1):
        if "arn" not in entry:
            raise validation_errors(
                [violation(f"policyArns.{i}.member.arn", "Member must not be null", None)]
            )
        out.append(entry["arn"])
    return tuple(out)


def _tags(form: Form) -> tuple[tuple[str, str], ...]:
    out = []
    for i, entry in enumerate(_members(form, "Tags", ("Key", "Value")), start=1):
        for part in ("Key", "Value"):
            if part not in entry:
                field = f"tags.{i}.member.{part.lower()}"
                raise validation_errors([violation(field, "Member must not be null", None)])
        out.append((entry["Key"], entry["Value"]))
    return tuple(out)


def assume_role_params(form: Form) -> AssumeRoleParams:
    return AssumeRoleParams(
        role_arn=form.get("RoleArn", ""),
        role_session_name=form.get("RoleSessionName", ""),
        duration_seconds=_duration(form),
        external_id=form.get("ExternalId", ""),
        policy=form.get("Policy", ""),
        policy_arns=_policy_arns(form),
        tags=_tags(form),
        transitive_tag_keys=tuple(e[""] for e in _members(form, "TransitiveTagKeys", ())),
        source_identity=form.get("SourceIdentity", ""),
        serial_number=form.get("SerialNumber", ""),
        token_code=form.get("TokenCode", ""),
    )


def web_identity_params(form: Form) -> WebIdentityParams:
    return WebIdentityParams(
        role_arn=form.get("RoleArn", ""),
        role_session_name=form.get("RoleSessionName", ""),
        web_identity_token=form.get("WebIdentityToken", ""),
        provider_id=form.get("ProviderId", ""),
        policy=form.get("Policy", ""),
        policy_arns=_policy_arns(form),
        duration_seconds=_duration(form),
    )


def saml_params(form: Form) -> SamlParams:
    return SamlParams(
        role_arn=form.get("RoleArn", ""),
        principal_arn=form.get("PrincipalArn", ""),
        saml_assertion=form.get("SAMLAssertion", ""),
        policy=form.get("Policy", ""),
        policy_arns=_policy_arns(form),
        duration_seconds=_duration(form),
    )


class StsQuery:
    """The ``POST /`` handler over the gRPC port's Services (same engine, metrics, caches)."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.deps = services.deps

    def _signer(self, request: web.Request, body: bytes) -> Caller:
        """The caller whose SigV4 signature the request carries (scope service ``sts``)."""
        if "Authorization" not in request.headers:
            raise MissingAuthenticationToken(
                "Request is missing Authentication Token", reason="missing"
            )
        engine = self.services.authn.engine
        snap = engine.snapshot
        now = engine.clock.now()
        signed = SignedRequest(
            request.method,
            f"{request.scheme}://{request.host}{request.raw_path}",
            tuple(request.headers.items()),
            body,
        )
        verified = verify_request(signed, world_lookup(snap.world.access_keys, snap.keys, now), now)
        if verified.service != SERVICE:
            raise SignatureDoesNotMatch(
                f"Credential should be scoped to correct service: '{SERVICE}'.",
                reason="wrong_service",
            )
        return self.services.authn.signer(verified, snap)

    async def assume_role(self, request: web.Request, body: bytes, form: Form) -> sts_xml.Members:
        caller = self._signer(request, body)
        result = assume_role(self.services.env(), caller, assume_role_params(form))
        self.services.issued("AssumeRole", "query", caller=caller.principal().arn,
                             session=result.arn, expires=result.credentials.expiration)  # fmt: skip
        members = sts_xml.role_members(result)
        members.append(("SourceIdentity", result.session.source_identity))
        return members

    async def get_caller_identity(
        self, request: web.Request, body: bytes, form: Form
    ) -> sts_xml.Members:
        return sts_xml.caller_identity_members(get_caller_identity(self._signer(request, body)))

    async def assume_role_with_web_identity(
        self, _request: web.Request, _body: bytes, form: Form
    ) -> sts_xml.Members:
        params = web_identity_params(form)
        # The JWKS may be fetched over the network: keep the event loop free.
        out = await asyncio.to_thread(
            assume_role_with_web_identity, self.services.env(), params, self.deps.jwks
        )
        self.services.issued(
            "AssumeRoleWithWebIdentity", "query", provider=out.provider, session=out.result.arn
        )
        members = sts_xml.role_members(out.result)
        members[1:1] = [("SubjectFromWebIdentityToken", out.subject_from_web_identity_token)]
        members += [
            ("Provider", out.provider),
            ("Audience", out.audience),
            ("SourceIdentity", out.source_identity),
        ]
        return members

    async def assume_role_with_saml(
        self, _request: web.Request, _body: bytes, form: Form
    ) -> sts_xml.Members:
        params = saml_params(form)
        out = await asyncio.to_thread(
            assume_role_with_saml, self.services.env(), params, self.deps.saml_metadata
        )
        self.services.issued(
            "AssumeRoleWithSAML", "query", issuer=out.issuer, session=out.result.arn
        )
        members = sts_xml.role_members(out.result)
        members += [
            ("Subject", out.subject),
            ("SubjectType", out.subject_type),
            ("Issuer", out.issuer),
            ("Audience", out.audience),
            ("NameQualifier", out.name_qualifier),
            ("SourceIdentity", out.source_identity),
        ]
        return members

    async def handle(self, request: web.Request) -> web.Response:
        request_id = str(uuid.uuid4())
        try:
            content_type = request.headers.get("Content-Type", "").split(";", 1)[0].strip()
            if content_type.lower() != FORM:
                raise ValidationError(f"The request's Content-Type must be {FORM}.")
            body = await request.read()
            form = parse_form(body)
            action = _check_action(form)
            members = await ACTIONS[action](self, request, body, form)
        except web.HTTPException:
            raise  # aiohttp's own answers (a body over the limit: 413)
        except Exception as err:
            return self._error(err, request_id)
        doc = sts_xml.response(action, members, request_id)
        return web.Response(body=doc, content_type="text/xml", headers=_id(request_id))

    def _error(self, err: Exception, request_id: str) -> web.Response:
        if isinstance(err, TokenError | FederationError):
            self.deps.metrics.token_failures.labels(err.reason).inc()
        elif not isinstance(err, SidecarError):
            log.error("unexpected failure; the call is refused", exc_info=err)
        status, doc = error_answer(err, request_id)
        return web.Response(
            status=status, body=doc, content_type="text/xml", headers=_id(request_id)
        )


def error_answer(err: Exception, request_id: str) -> tuple[int, bytes]:
    """AWS's HTTP status and error document for ``err`` (anything not a SidecarError is an
    InternalFailure that says no more)."""
    if isinstance(err, SidecarError):
        code, message = err.code, err.message
    else:
        code, message = "InternalFailure", "internal error"
    status = STATUS.get(code, 400)
    message = bounded_message(message)  # as on the gRPC port: no echo of a huge input
    return status, sts_xml.error_document(code, message, request_id, sender=status < 500)


def _id(request_id: str) -> dict[str, str]:
    return {"x-amzn-RequestId": request_id}


Handler = Callable[[StsQuery, web.Request, bytes, Form], Awaitable[sts_xml.Members]]
ACTIONS: dict[str, Handler] = {
    "AssumeRole": StsQuery.assume_role,
    "AssumeRoleWithWebIdentity": StsQuery.assume_role_with_web_identity,
    "AssumeRoleWithSAML": StsQuery.assume_role_with_saml,
    "GetCallerIdentity": StsQuery.get_caller_identity,
}


def add_sts_query(app: web.Application, deps: ServerDeps) -> None:
    """Serve the STS Query API at ``POST /`` of ``app``, over the gRPC port's engine, metrics
    and caches (``deps``). The app's body limit must be at least MAX_BODY_BYTES."""
    app.router.add_post("/", StsQuery(Services(deps)).handle)

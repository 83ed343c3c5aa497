"""Which condition keys a caller may state, and which belong to the sidecar.

A caller states facts about the request only: what it asks and what it targets. Every key that
describes the principal, its session, its organization or the network connection belongs to the
sidecar, which sets it or leaves it absent. docs/CONDITION-KEYS.md lists every global condition
key with its source. Used by STS and Authorize (sidecar/sts/context.py) and by the world loader
(route-declared context keys of ext_authz).
"""

from __future__ import annotations

# The global keys a caller may give (AWS spelling; compared lowercased): the request and its
# target. Every other ``aws:`` key is the sidecar's, known or not.
CALLER_GLOBAL_KEYS = (
    "aws:RequestedRegion",
    "aws:TagKeys",
    "aws:UserAgent",
    "aws:referer",
    "aws:SourceArn",
    "aws:SourceAccount",
)
CALLER_GLOBAL_PREFIXES = ("aws:RequestTag/", "aws:ResourceTag/")

# Service-prefixed keys that AWS lists among the properties of a role session: they describe
# where the credentials were delivered, so a caller cannot state them.
SESSION_SERVICE_KEYS = (
    "ec2:RoleDelivery",
    "ec2:SourceInstanceArn",
    "glue:RoleAssumedBy",
    "glue:CredentialIssuingService",
    "codebuild:BuildArn",
    "codebuild:ProjectArn",
    "lambda:SourceFunctionArn",
    "ssm:SourceInstanceArn",
    "identitystore:UserId",
)
# Prefixes only the sidecar sets: STS's own keys and SAML's. Each identity provider's prefix
# (``accounts.google.com:``, an OIDC issuer) is added per world by the caller of CallerKeys.
SIDECAR_PREFIXES = ("aws:", "sts:", "saml:")

# The other global keys AWS lists ("AWS global condition context keys"), for naming a refused
# key in AWS's spelling; prefix families end with "/".
# fmt: off
SIDECAR_GLOBAL_KEYS = (
    # properties of the principal
    "aws:PrincipalArn", "aws:PrincipalAccount", "aws:PrincipalOrgPaths", "aws:PrincipalOrgID",
    "aws:PrincipalTag/", "aws:PrincipalIsAWSService", "aws:PrincipalServiceName",
    "aws:PrincipalServiceNamesList", "aws:PrincipalType", "aws:userid", "aws:username",
    # properties of a role session
    "aws:AssumedRoot", "aws:FederatedProvider", "aws:TokenIssueTime", "aws:SignInSessionArn",
    "aws:MultiFactorAuthAge", "aws:MultiFactorAuthPresent", "aws:ChatbotSourceArn",
    "aws:Ec2InstanceSourceVpc", "aws:Ec2InstanceSourcePrivateIPv4", "aws:SourceIdentity",
    # properties of the network
    "aws:SourceIp", "aws:SourceVpc", "aws:SourceVpcArn", "aws:SourceVpce", "aws:VpceAccount",
    "aws:VpceOrgID", "aws:VpceOrgPaths", "aws:VpcSourceIp",
    # properties of the resource (its tags excepted)
    "aws:ResourceAccount", "aws:ResourceOrgID", "aws:ResourceOrgPaths",
    # properties of the request that the caller does not state
    "aws:CalledVia", "aws:CalledViaFirst", "aws:CalledViaLast", "aws:CalledViaAWSMCP",
    "aws:ViaAWSService", "aws:ViaAWSMCPService", "aws:CurrentTime", "aws:EpochTime",
    "aws:SecureTransport", "aws:SourceOrgID", "aws:SourceOrgPaths", "aws:IsMcpServiceAction",
)
# fmt: on

_CALLER_KEYS = frozenset(k.lower() for k in CALLER_GLOBAL_KEYS)
_CALLER_PREFIXES = tuple(p.lower() for p in CALLER_GLOBAL_PREFIXES)
_SESSION_SERVICE_KEYS = frozenset(k.lower() for k in SESSION_SERVICE_KEYS)
_SPELLING = {k.lower(): k for k in (*SIDECAR_GLOBAL_KEYS, *SESSION_SERVICE_KEYS)}


def caller_may_give(key: str, federated_prefixes: tuple[str, ...] = ()) -> bool:
    """May a caller set this context key? ``federated_prefixes`` are the identity providers'
    lowercase key prefixes with their colon (``accounts.google.com:``)."""
    k = key.lower()
    if k.startswith("aws:"):
        return k in _CALLER_KEYS or k.startswith(_CALLER_PREFIXES)
    if k in _SESSION_SERVICE_KEYS or k.startswith(SIDECAR_PREFIXES):
        return False
    return not k.startswith(federated_prefixes)


def spelling(key: str) -> str:
    """A key as AWS spells it where it is a known one (context keys are stored lowercased)."""
    k = key.lower()
    exact = _SPELLING.get(k)
    if exact is not None:
        return exact
    slash = k.find("/")
    family = _SPELLING.get(k[: slash + 1]) if slash > 0 else None
    return family + key[slash + 1 :] if family is not None else key

"""EKS Pod Identity: which role each Kubernetes service account's pods receive."""

from __future__ import annotations

from sidecar.identity.load.state import Loader
from sidecar.identity.load.toolkit import at
from sidecar.identity.model import PodIdentity, PodIdentityAssociation
from sidecar.policy.arn import Arn

_POD_IDENTITY_KEYS = (
    "issuer", "audience", "cluster_name", "associations", "cluster_arn", "duration_seconds",
)  # fmt: skip
# Bounds of a role session (docs/STS.md); the role's MaxSessionDuration also caps it.
_MIN_DURATION, _MAX_DURATION = 900, 43200
_ASSOCIATION_KEYS = ("namespace", "service_account", "role_arn")


def read_pod_identity(ld: Loader, value: object, path: str) -> PodIdentity | None:
    """Read after the accounts: the issuer must be an OIDC provider's url, each role a role."""
    m = ld.fields(value, path, _POD_IDENTITY_KEYS, _POD_IDENTITY_KEYS[:3])
    if m is None:
        return None
    issuer = ld.string(m, "issuer", path, empty=False)
    if issuer is not None and issuer not in ld.oidc_urls:
        ld.issue(
            at(path, "issuer"),
            f"issuer {issuer!r} is not the url of any oidc provider in the world",
        )
    audience = ld.string(m, "audience", path, empty=False)
    cluster = ld.string(m, "cluster_name", path, empty=False)
    cluster_arn = ""
    if "cluster_arn" in m:
        cluster_arn = ld.string(m, "cluster_arn", path, empty=False) or ""
        parsed = Arn.parse(cluster_arn) if cluster_arn else None
        if cluster_arn and (
            parsed is None or parsed.service != "eks" or not parsed.resource.startswith("cluster/")
        ):
            ld.issue(
                at(path, "cluster_arn"),
                f"cluster_arn {cluster_arn!r} is not an EKS cluster ARN "
                "(arn:aws:eks:REGION:ACCOUNT:cluster/NAME)",
            )
    duration = m.get("duration_seconds", 3600)
    if (
        not isinstance(duration, int)
        or isinstance(duration, bool)
        or not _MIN_DURATION <= duration <= _MAX_DURATION
    ):
        ld.issue(
            at(path, "duration_seconds"),
            f"duration_seconds must be an integer from {_MIN_DURATION} to {_MAX_DURATION}, "
            f"got {duration!r}",
        )
        duration = 3600
    associations: list[PodIdentityAssociation] = []
    seen: set[tuple[str, str]] = set()
    for item, where in ld.each(m, "associations", path):
        a = ld.fields(item, where, _ASSOCIATION_KEYS, _ASSOCIATION_KEYS)
        if a is None:
            continue
        namespace = ld.string(a, "namespace", where, empty=False)
        account = ld.string(a, "service_account", where, empty=False)
        role_arn = ld.string(a, "role_arn", where, empty=False)
        if namespace is not None and account is not None:
            if (namespace, account) in seen:
                ld.issue(where, f"duplicate association for service account {namespace}/{account}")
            seen.add((namespace, account))
        if role_arn is not None and not _role_exists(ld, role_arn, at(where, "role_arn")):
            continue
        if namespace and account and role_arn:
            associations.append(PodIdentityAssociation(namespace, account, role_arn))
    if issuer is None or audience is None or cluster is None:
        return None
    return PodIdentity(issuer, audience, cluster, tuple(associations), cluster_arn, duration)


def _role_exists(ld: Loader, arn: str, path: str) -> bool:
    """Is ``arn`` (path included) a role of the world? If not, say so, with the ARN of a
    role of that name when only the path is wrong."""
    parsed = Arn.parse(arn)
    actual = None
    if parsed is not None and parsed.resource.startswith("role/"):
        name = parsed.resource.rsplit("/", 1)[-1].lower()
        actual = ld.role_arns.get((parsed.account, name))
    if actual == arn:
        return True
    hint = f" (the role's ARN is {actual})" if actual is not None else ""
    ld.issue(path, f"no role {arn}{hint}")
    return False

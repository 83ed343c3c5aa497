"""Actions that need no permission and that no policy can deny (docs/SEMANTICS.md §5.2).

STS API: GetCallerIdentity: "No permissions are required to perform this operation. If an
administrator attaches a policy to your identity that explicitly denies access to the
sts:GetCallerIdentity action, you can still perform this operation." Authorize and
SimulateCustomPolicy both ask here first, so every path answers the same.
"""

from __future__ import annotations

from sidecar.policy.evaluate import Decision, Evaluation

# Lowercased: action names compare case-insensitively (§2.1).
_UNCONDITIONAL = {"sts:getcalleridentity": "sts:GetCallerIdentity"}


def unconditional(action: str) -> tuple[Evaluation, str] | None:
    """ALLOWED with no statements, and its reason, for an action that needs no permission;
    None for any other action."""
    name = _UNCONDITIONAL.get(action.lower())
    if name is None:
        return None
    return Evaluation(Decision.ALLOWED, (), None), f"{name} needs no permission"

"""Conversions between the wire messages (iamsidecar.v1) and the pure core's types."""

from __future__ import annotations

from collections.abc import Iterable

from sidecar.api.v1 import authorizer_pb2, types_pb2
from sidecar.errors import ValidationError
from sidecar.policy.context import Context
from sidecar.policy.entries import ContextType, context_from_entries
from sidecar.policy.evaluate import Matched
from sidecar.policy.simulate import Check, SimulationRequest, simulate


def _context_type(value: int, key: str) -> ContextType:
    try:
        return ContextType(value)
    except ValueError:  # proto3 enums carry unknown numbers through
        raise ValidationError(f"Context key '{key}' has an unknown type {value}") from None


def context_from_pb(entries: Iterable[types_pb2.ContextEntry], *, field: str) -> Context:
    return context_from_entries(
        ((e.key, list(e.values), _context_type(e.type, e.key)) for e in entries), field=field
    )


def statement_ref_pb(m: Matched) -> types_pb2.StatementRef:
    ref = m.ref
    return types_pb2.StatementRef(
        policy_id=ref.policy_id,
        sid=ref.sid,
        index=ref.index,
        effect=ref.effect,
        policy_type=m.policy_type.value,
    )


def simulation_request(
    req: authorizer_pb2.SimulateCustomPolicyRequest, *, context: bool = True
) -> SimulationRequest:
    """The core's request. ``context=False`` leaves the context entries out (and unconverted):
    enough to check the request's size limits cheaply."""
    return SimulationRequest(
        actions=list(req.action_names),
        resources=list(req.resource_arns),
        policies=list(req.policy_input_list),
        boundaries=list(req.permissions_boundary_policy_input_list),
        session_policies=list(req.session_policy_input_list),
        scps=list(req.service_control_policy_input_list),
        scp_levels=[
            list(level.service_control_policy_input_list)
            for level in req.ordered_organization_policy_input_list
        ],
        rcp_levels=[
            list(level.resource_control_policy_input_list)
            for level in req.ordered_resource_control_policy_input_list
        ],
        resource_policy=req.resource_policy,
        resource_owner=req.resource_owner,
        caller_arn=req.caller_arn,
        context=context_from_pb(req.context_entries, field="contextEntries")
        if context
        else Context(),
    )


def simulate_custom_policy(
    req: authorizer_pb2.SimulateCustomPolicyRequest, check: Check | None = None
) -> authorizer_pb2.SimulateCustomPolicyResponse:
    """The one code path of SimulateCustomPolicy, for the RPC (in a worker process) and for
    `iam-sidecar simulate`. ``check`` is called between pairs and may raise to stop."""
    results = simulate(simulation_request(req), check)
    return authorizer_pb2.SimulateCustomPolicyResponse(
        evaluation_results=[
            authorizer_pb2.EvaluationResult(
                eval_action_name=r.action,
                eval_resource_name=r.resource,
                eval_decision=int(r.evaluation.decision),  # type: ignore[arg-type]
                matched_statements=[statement_ref_pb(m) for m in r.evaluation.matched],
                missing_context_values=list(r.missing_context_values),
                reason=r.reason,
            )
            for r in results
        ]
    )

"""The access report of a role (`iam-sidecar access`): who can assume it and what it may do,
read from the world and decided by the engine's own evaluation (docs/ACCESS.md).

who.py reads the trust policy, verdict.py evaluates each identity's sts:AssumeRole, what.py
reads the role's permissions and guardrails, report.py renders text and JSON."""

from sidecar.inspect_role.report import FORMAT_VERSION, RoleReport, inspect_role, to_json, to_text

__all__ = ["FORMAT_VERSION", "RoleReport", "inspect_role", "to_json", "to_text"]

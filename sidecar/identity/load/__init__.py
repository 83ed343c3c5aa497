"""Build the World from a parsed world file (docs/API.md §5), validating everything first.

The file is read in two passes. The first walks the document once, checking every key, type,
name, limit and policy, and reporting each problem as (path, message) with a path such as
`accounts[0].roles[2].trust_policy.Statement[1].Principal.AWS`. The second checks references
that need the whole world: attached managed policies, principals naming users, roles and
providers, and pod-identity roles. Only when no problem was found is the World assembled;
otherwise WorldError lists them all.

Pure: secrets (access-key secrets, MFA seeds) come through ``secrets``, never from the
environment or a file read here.

``build`` reads the sections in order; docs/ARCHITECTURE.md lists the modules.
"""

from sidecar.identity.load.build import build_world
from sidecar.identity.load.state import SecretSource

__all__ = ["SecretSource", "build_world"]

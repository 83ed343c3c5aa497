"""Federation: AssumeRoleWithWebIdentity (OIDC) and AssumeRoleWithSAML."""

"""An account's identity providers: OIDC (web identity) and SAML."""

from __future__ import annotations

import re

from sidecar.identity.load.naming import iam_arn
from sidecar.identity.load.state import AccountParts, Loader
from sidecar.identity.load.toolkit import at
from sidecar.identity.model import OidcProvider, SamlProvider

_OIDC_KEYS = ("url", "client_ids", "jwks_file", "jwks_url")
_SAML_KEYS = ("name", "metadata_file", "recipient", "audience")
_SAML_NAME = re.compile(r"[\w.-]{1,128}", re.ASCII)


def read_oidc_provider(ld: Loader, value: object, path: str, acct: AccountParts) -> None:
    m = ld.fields(value, path, _OIDC_KEYS, ("url", "client_ids"))
    if m is None:
        return
    url = ld.string(m, "url", path)
    arn = ""
    if url is not None:
        host_path = url.removeprefix("https://").rstrip("/")
        if (
            not url.startswith("https://")
            or not host_path
            or any(c.isspace() or c in "?#" for c in host_path)
        ):
            ld.issue(
                at(path, "url"),
                f"url {url!r} must be https://host[/path], without query or fragment",
            )
            url = None
        else:
            arn = iam_arn(ld.partition, acct.account_id, "oidc-provider", host_path)
            ld.oidc_urls.add(url)
            if arn in acct.provider_arns:
                ld.issue(at(path, "url"), f"duplicate oidc provider url {url!r}")
                url = None
            acct.provider_arns.add(arn)
    client_ids = ld.strings(m, "client_ids", path, required=True)
    jwks = ld.one_of(m, ("jwks_file", "jwks_url"), path)
    jwks_value = ld.string(m, jwks, path, empty=False) if jwks is not None else None
    if (
        jwks == "jwks_url"
        and jwks_value is not None
        and not jwks_value.startswith(("https://", "http://"))
    ):
        ld.issue(at(path, "jwks_url"), f"jwks_url {jwks_value!r} must be an http(s) URL")
    if url is None or not client_ids or jwks_value is None:
        return
    acct.oidc_providers[arn] = OidcProvider(
        account=acct.account_id,
        url=url,
        arn=arn,
        client_ids=tuple(client_ids),
        jwks_file=jwks_value if jwks == "jwks_file" else "",
        jwks_url=jwks_value if jwks == "jwks_url" else "",
    )


def read_saml_provider(ld: Loader, value: object, path: str, acct: AccountParts) -> None:
    m = ld.fields(value, path, _SAML_KEYS, ("name", "metadata_file"))
    if m is None:
        return
    name = ld.string(m, "name", path)
    arn = ""
    if name is not None:
        arn = iam_arn(ld.partition, acct.account_id, "saml-provider", name)
        if not _SAML_NAME.fullmatch(name):
            ld.issue(
                at(path, "name"),
                f"saml provider name {name!r} must be 1-128 letters, digits and _.-",
            )
            name = None
        elif arn in acct.provider_arns:
            ld.issue(at(path, "name"), f"duplicate saml provider name {name!r}")
            name = None
        acct.provider_arns.add(arn)
    metadata_file = ld.string(m, "metadata_file", path, empty=False)
    recipient = ld.string(m, "recipient", path, empty=False)
    audience = ld.string(m, "audience", path, empty=False)
    if name is None or metadata_file is None:
        return
    overrides = {"recipient": recipient, "audience": audience}  # else the model's defaults
    acct.saml_providers[arn] = SamlProvider(
        acct.account_id,
        name,
        arn,
        metadata_file,
        **{key: text for key, text in overrides.items() if text is not None},
    )

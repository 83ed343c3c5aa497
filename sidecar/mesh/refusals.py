"""Requests the mapping refuses before any policy is evaluated."""

from __future__ import annotations

from sidecar.errors import SidecarError


class RouteRefused(SidecarError):
    """A request no route may map: ``code`` (AWS style), HTTP ``status`` and ``message``."""

    status = 400


class BadRequest(RouteRefused):
    """The path or query cannot be read one way only (400): an encoded '/' or '\\' in a
    segment, '..' above the root, a bad percent-escape, NUL, invalid UTF-8, or several values
    for a single-valued condition key."""

    code = "InvalidRequest"
    status = 400


class ResourceTooLong(RouteRefused):
    """The resource is longer than an ARN may be: denied (403) without evaluation."""

    code = "AccessDenied"
    status = 403

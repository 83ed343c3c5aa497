"""What the shop's server and client share: its one service and the message it uses.

The shop needs no generated code of its own: it borrows the sidecar's ``Tag`` message
(``key``, ``value``) as both request and response, and serves through a generic handler.
"""

from __future__ import annotations

from sidecar.api.v1 import types_pb2

Message = types_pb2.Tag
SERVICE = "shop.Reports"
GET_REPORT = f"/{SERVICE}/GetReport"

# Each method's (IAM action, resource template): {key} is the request's `key` field.
RULES = {GET_REPORT: ("s3:GetObject", "arn:aws:s3:::reports/{key}")}

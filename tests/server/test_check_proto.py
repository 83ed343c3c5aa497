"""Our Envoy messages are Envoy's on the wire: packages, message names and field numbers as in
envoyproxy/envoy's api/envoy/service/auth/v3/*.proto, api/envoy/config/core/v3/{base,address}
.proto and api/envoy/type/v3/http_status.proto (only the fields the sidecar uses)."""

from __future__ import annotations

from google.protobuf.descriptor import Descriptor

from sidecar.api.envoy.config.core.v3 import address_pb2, base_pb2
from sidecar.api.envoy.service.auth.v3 import attribute_context_pb2, external_auth_pb2
from sidecar.api.envoy.type.v3 import http_status_pb2

Context = attribute_context_pb2.AttributeContext


def numbers(descriptor: Descriptor) -> dict[str, int]:
    return {f.name: f.number for f in descriptor.fields}


def test_the_service_and_its_messages() -> None:
    service = external_auth_pb2.DESCRIPTOR.services_by_name["Authorization"]
    assert service.full_name == "envoy.service.auth.v3.Authorization"
    check = service.methods_by_name["Check"]
    assert check.input_type.full_name == "envoy.service.auth.v3.CheckRequest"
    assert check.output_type.full_name == "envoy.service.auth.v3.CheckResponse"
    assert numbers(external_auth_pb2.CheckRequest.DESCRIPTOR) == {"attributes": 1}
    response = external_auth_pb2.CheckResponse.DESCRIPTOR
    assert numbers(response) == {"status": 1, "denied_response": 2, "ok_response": 3}
    status = response.fields_by_name["status"].message_type
    assert status is not None
    assert status.full_name == "google.rpc.Status"
    assert numbers(external_auth_pb2.DeniedHttpResponse.DESCRIPTOR) == {
        "status": 1, "headers": 2, "body": 3,
    }  # fmt: skip
    assert numbers(external_auth_pb2.OkHttpResponse.DESCRIPTOR) == {
        "headers": 2, "headers_to_remove": 5,
    }  # fmt: skip


def test_attribute_context() -> None:
    assert Context.DESCRIPTOR.full_name == "envoy.service.auth.v3.AttributeContext"
    assert numbers(Context.DESCRIPTOR) == {"source": 1, "request": 4}
    assert numbers(Context.Peer.DESCRIPTOR) == {"address": 1, "principal": 4}
    assert numbers(Context.Request.DESCRIPTOR) == {"http": 2}
    assert numbers(Context.HttpRequest.DESCRIPTOR) == {
        "method": 2, "headers": 3, "path": 4, "host": 5, "scheme": 6, "raw_body": 12,
        "header_map": 13,
    }  # fmt: skip


def test_core_and_type_messages() -> None:
    assert (
        base_pb2.HeaderValueOption.DESCRIPTOR.full_name == "envoy.config.core.v3.HeaderValueOption"
    )
    assert numbers(base_pb2.HeaderValue.DESCRIPTOR) == {"key": 1, "value": 2, "raw_value": 3}
    assert numbers(base_pb2.HeaderValueOption.DESCRIPTOR) == {"header": 1, "append_action": 3}
    assert dict(base_pb2.HeaderValueOption.HeaderAppendAction.items()) == {
        "APPEND_IF_EXISTS_OR_ADD": 0, "ADD_IF_ABSENT": 1, "OVERWRITE_IF_EXISTS_OR_ADD": 2,
        "OVERWRITE_IF_EXISTS": 3,
    }  # fmt: skip
    assert numbers(base_pb2.HeaderMap.DESCRIPTOR) == {"headers": 1}
    assert numbers(address_pb2.Address.DESCRIPTOR) == {"socket_address": 1}
    assert numbers(address_pb2.SocketAddress.DESCRIPTOR) == {"address": 2, "port_value": 3}
    assert http_status_pb2.HttpStatus.DESCRIPTOR.full_name == "envoy.type.v3.HttpStatus"
    assert numbers(http_status_pb2.HttpStatus.DESCRIPTOR) == {"code": 1}
    assert dict(http_status_pb2.StatusCode.items()) == {
        "Empty": 0, "OK": 200, "BadRequest": 400, "Unauthorized": 401, "Forbidden": 403,
    }  # fmt: skip


def test_fields_envoy_sends_that_we_leave_out_are_skipped() -> None:
    """A CheckRequest with fields this file does not declare (destination = 2,
    context_extensions = 10, http.id = 1) parses, keeping what it declares."""
    # attributes{ destination{ principal: "x" } request{ http{ id: "r1" method: "GET" } } }
    destination = b"\x12\x03\x22\x01x"
    http = b"\x0a\x02r1\x12\x03GET"
    request = b"\x22" + bytes([len(http) + 2]) + b"\x12" + bytes([len(http)]) + http
    attributes = destination + request
    raw = b"\x0a" + bytes([len(attributes)]) + attributes
    parsed = external_auth_pb2.CheckRequest.FromString(raw)
    assert parsed.attributes.request.http.method == "GET"

"""The service mesh's pure core: an HTTP request as Envoy's ext_authz reports it, mapped to an
IAM action, resource and request context by the world file's ``ext_authz`` routes (docs/MESH.md).

No transport here: the Check servicer (sidecar/server/ext_authz.py) builds an HttpRequest from
Envoy's CheckRequest and asks the RouteTable for the Target.
"""

"""The Python SDK for iam-sidecar: `SidecarClient` (client.py) and SigV4 signing of gRPC calls."""

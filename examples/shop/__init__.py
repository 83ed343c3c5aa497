"""A tiny gRPC application protected by the sidecar: see README.md."""

"""STS: trust evaluation, the AssumeRole family, session tokens and their keys.

Pure: the clock and the source of randomness are injected, so every flow is testable with a
frozen clock and deterministic bytes.
"""

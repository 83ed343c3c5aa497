"""The embedded demo world that `iam-sidecar serve` uses when no --config is given."""

from __future__ import annotations

from pathlib import Path

WORLD_FILE = Path(__file__).with_name("world.yaml")
# The demo user's secret is published (it is a demo): README shows it. Set
# IAM_SIDECAR_DEMO_SECRET to use another.
DEMO_ACCESS_KEY_ID = "AKIADEMOALICE0000001"
DEMO_SECRET = "DemoSecretForAliceDoNotUseInProduction00"
DEMO_SECRET_ENV = "IAM_SIDECAR_DEMO_SECRET"

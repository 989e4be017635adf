"""The image's tests use the integration tests' broker fixtures: fresh topics on the local broker."""

from tests.integration.conftest import fresh_settings, kafka_bootstrap

__all__ = ["fresh_settings", "kafka_bootstrap"]

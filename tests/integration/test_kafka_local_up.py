"""Starting the local broker twice is harmless."""

from __future__ import annotations

import pytest

from daemon.kafka_local import KafkaLocal

pytestmark = pytest.mark.kafka


def test_up_twice_keeps_the_same_broker(kafka_bootstrap: str, capsys: pytest.CaptureFixture[str]) -> None:
    kafka = KafkaLocal.from_env()
    if kafka.bootstrap != kafka_bootstrap:
        pytest.fail(f"tests use {kafka_bootstrap}, the local broker is configured for {kafka.bootstrap}")
    pid = kafka.pid()
    kafka.up()
    assert "already running" in capsys.readouterr().out
    assert kafka.pid() == pid
    assert kafka.status() is True

"""Writing a command to the control topic, and knowing that the broker has it.

The admin API answers 202 only once the broker has acknowledged the command: an operator who got
a command id can count on it being read by the train step. The producer is idempotent (acks=all);
a message the broker has not taken within ``timeout_s`` fails in librdkafka too
(``message.timeout.ms``), so a command refused with 503 is not sent later behind the operator's back.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any, Protocol

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from dataflows.kafka_io import DeliveryError, produce_waiting
from dataflows.records import KafkaOut

__all__ = ["CommandSink", "KafkaCommandSink"]


class CommandSink(Protocol):
    def send(self, out: KafkaOut) -> None:
        """Return once the broker has acknowledged ``out``; raise `DeliveryError` if it has not."""
        ...


class KafkaCommandSink:
    """`CommandSink` over one idempotent producer, shared by the API's request threads.

    It also answers ``list_topics``, so a `daemon.api.health.BrokerProbe` can reuse its connection.
    """

    def __init__(self, brokers: str, config: Mapping[str, Any] | None = None, *, timeout_s: float = 10.0) -> None:
        self.timeout_s = timeout_s
        self._producer = Producer({
            "bootstrap.servers": brokers, "enable.idempotence": True, "acks": "all", "linger.ms": 0,
            "message.timeout.ms": int(timeout_s * 1000), "client.id": "headwater-admin-commands", **dict(config or {}),
        })  # fmt: skip
        self._lock = threading.Lock()

    def send(self, out: KafkaOut) -> None:
        errors: list[str] = []

        def delivered(err: KafkaError | None, msg: Message) -> None:
            if err is not None:
                errors.append(str(err))

        with self._lock:  # one command at a time: its acknowledgement is the one waited for
            try:
                produce_waiting(self._producer, out.topic, out.key, out.value, delivered)
            except KafkaException as exc:
                msg = f"Kafka refused the command for {out.topic}: {exc}"
                raise DeliveryError(msg) from exc
            left = self._producer.flush(self.timeout_s + 1.0)
        if errors:
            msg = f"the broker did not take the command on {out.topic}: {errors[0]}"
            raise DeliveryError(msg)
        if left:
            msg = f"the command on {out.topic} was not acknowledged within {self.timeout_s:g} s; is the broker up?"
            raise DeliveryError(msg)

    def list_topics(self, topic: str | None = None, timeout: float = -1) -> Any:
        return self._producer.list_topics(topic, timeout)

    def close(self) -> None:
        """Flush what is in flight (the producer itself lives on: readiness may still ask it)."""
        with self._lock:
            self._producer.flush(self.timeout_s)

"""Create Headwater's topics (idempotently) with the Kafka admin API."""

from __future__ import annotations

from collections.abc import Iterable

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

__all__ = ["TopicError", "ensure_topics"]


class TopicError(RuntimeError):
    """A topic could not be created."""


def ensure_topics(
    bootstrap: str, names: Iterable[str], partitions: int, replication: int = 1, timeout_s: float = 30.0
) -> list[str]:
    """Create the topics that do not exist yet; return the names that were created."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    wanted = list(dict.fromkeys(names))
    existing = set(admin.list_topics(timeout=timeout_s).topics)
    missing = [n for n in wanted if n not in existing]
    if not missing:
        return []
    futures = admin.create_topics(
        [NewTopic(n, num_partitions=partitions, replication_factor=replication) for n in missing],
        operation_timeout=timeout_s,
    )
    created = []
    for name, future in futures.items():
        try:
            future.result(timeout=timeout_s)
            created.append(name)
        except KafkaException as exc:
            if exc.args and exc.args[0].name() == "TOPIC_ALREADY_EXISTS":
                continue
            msg = f"cannot create topic {name!r}: {exc}"
            raise TopicError(msg) from exc
    return created

"""Create Headwater's topics (idempotently) with the Kafka admin API."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

__all__ = ["TopicError", "delete_topics", "ensure_topics", "require_one_partition"]


log = logging.getLogger(__name__)


class TopicError(RuntimeError):
    """A topic could not be created."""


def _admin(bootstrap: str, client: Mapping[str, Any] | None) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap, **dict(client or {})})


def ensure_topics(
    bootstrap: str,
    names: Iterable[str],
    partitions: int,
    replication: int = 1,
    timeout_s: float = 30.0,
    config: dict[str, str] | None = None,
    client: Mapping[str, Any] | None = None,
) -> list[str]:
    """Create the topics that do not exist yet (with the topic ``config``, e.g. compaction);
    return the names that were created. ``client``: librdkafka settings of the admin client
    (the security block: `daemon.config.Settings.kafka_config`)."""
    admin = _admin(bootstrap, client)
    wanted = list(dict.fromkeys(names))
    existing = set(admin.list_topics(timeout=timeout_s).topics)
    missing = [n for n in wanted if n not in existing]
    if not missing:
        return []
    new = [NewTopic(n, num_partitions=partitions, replication_factor=replication, config=config or {}) for n in missing]
    futures = admin.create_topics(new, operation_timeout=timeout_s)
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


def require_one_partition(
    bootstrap: str, topic: str, what: str, timeout_s: float = 30.0, client: Mapping[str, Any] | None = None
) -> None:
    """Refuse a topic of more than one partition where order across all its messages matters
    (the control topic: a command's offset is its place in that order). A topic created a moment
    ago may not be in the brokers' metadata yet, or without its partitions' leaders: that is waited
    for, up to ``timeout_s``."""
    admin = _admin(bootstrap, client)
    deadline = time.monotonic() + timeout_s
    while True:
        found = admin.list_topics(topic, timeout=timeout_s).topics.get(topic)
        count = 0 if found is None or found.error is not None else len(found.partitions)
        if count > 1 or (count == 1 and found is not None and all(p.leader >= 0 for p in found.partitions.values())):
            break
        if time.monotonic() > deadline:
            break
        time.sleep(0.1)
    if count != 1:
        msg = f"{topic} has {count} partitions; the {what} needs exactly 1 (create it with one, or name another)"
        raise TopicError(msg)


def delete_topics(
    bootstrap: str, names: Iterable[str], timeout_s: float = 30.0, client: Mapping[str, Any] | None = None
) -> list[str]:
    """Delete topics made for one run (tests, the demo, benchmarks); return the names deleted.

    A broker loads every partition on disk when it starts, so throwaway topics left behind make
    each later start slower. Deleting is clean-up: a failure is logged, never raised.
    """
    wanted = list(dict.fromkeys(names))
    if not wanted:
        return []
    admin = _admin(bootstrap, client)
    deleted = []
    for name, future in admin.delete_topics(wanted, operation_timeout=timeout_s).items():
        try:
            future.result(timeout=timeout_s)
            deleted.append(name)
        except Exception as exc:  # clean-up only: say so, never fail the caller
            log.warning("could not delete topic %s: %s", name, exc)
    return deleted

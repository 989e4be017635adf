"""End-to-end benchmark through the real broker: Headwater vs a plain confluent-kafka loop.

Both systems see the same events (same count, same payloads, same topic layout) in the same run:

* **throughput** — N events are pre-loaded on an events topic; each system reads it from the
  beginning and writes one output per event. Headwater runs with ``runtime.tail: false``, so
  ``run_daemon`` returns once the topics are drained and the sink has every acknowledgement; the
  baseline stops once it has consumed N messages and flushed. events/s = N / wall seconds.
* **latency** — each system runs in a thread (Headwater with ``tail: true``) while a producer
  thread sends events at a fixed rate and a reader thread consumes the output topic. Latency is
  the reader's receive time minus the input message's Kafka timestamp (set when the input was
  produced): Headwater's predictions carry it as ``event_ts_ms``, the baseline copies it into an
  ``in_ts_ms`` header. Warm-up events (other ids) are sent first and not counted.

The baseline is the least a Kafka-in/Kafka-out service can do: ``Consumer.consume`` a batch
(``batch.max_size`` messages or ``batch.max_wait_ms``, Headwater's micro-batch knobs), produce
each message to the output topic with the producer settings of Headwater's sink (idempotent,
acks=all, linger.ms=2, lz4), flush per batch. Like Bytewax's Kafka source it ``assign``s the
partitions (no consumer-group rebalance) and starts at the beginning.

The package: `systems` (the two systems and how each is measured), `render` (the table and the
Markdown, from the JSON), `__main__` (the command line). Run from the repository root with the broker
up (``python3 -m daemon.kafka_local up``)::

    .venv/bin/python -m bench.e2e_kafka            # writes bench/results/e2e_kafka.{json,md}
"""

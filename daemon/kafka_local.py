"""A real, single-node Apache Kafka broker for development, tests and the demo.

The broker is Apache Kafka 4.x in KRaft mode, bound to 127.0.0.1, run from the official jars on
Maven Central. The jars are resolved with the machine's Maven and cached outside the repository
(``$HEADWATER_CACHE``, default ``~/.cache/headwater``); the broker's data and log live there too.

This module uses the standard library only, so it runs before any virtual environment exists::

    python3 -m daemon.kafka_local up       # idempotent: a running broker is left alone
    python3 -m daemon.kafka_local status
    python3 -m daemon.kafka_local down
    python3 -m daemon.kafka_local reset    # stop and wipe the broker's data
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

__all__ = ["KafkaLocal", "KafkaLocalError", "main"]

KAFKA_VERSION = os.environ.get("HEADWATER_KAFKA_VERSION", "4.1.1")
SCALA_VERSION = "2.13"
LOG4J_VERSION = "2.24.3"

_POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>headwater</groupId><artifactId>kafka-local</artifactId><version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_{scala}</artifactId>
      <version>{kafka}</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId>
      <version>{log4j}</version></dependency>
  </dependencies>
</project>
"""

_LOG4J2 = """Configuration:
  Appenders:
    Console:
      name: STDOUT
      PatternLayout:
        Pattern: "[%d] %p %m (%c)%n"
  Loggers:
    Root:
      level: WARN
      AppenderRef:
        - ref: STDOUT
    Logger:
      - name: kafka.server.KafkaRaftServer
        level: INFO
"""


_MANY_PARTITIONS = 2000  # above this, a start takes long enough to say why


class KafkaLocalError(RuntimeError):
    """The local broker could not be set up; the message says what to install or check."""


@dataclass(frozen=True)
class KafkaLocal:
    """Where the local broker keeps its jars and data, and on which ports it listens."""

    cache: Path
    port: int = 9092
    controller_port: int = 9093
    host: str = "127.0.0.1"

    @classmethod
    def from_env(cls) -> KafkaLocal:
        cache = Path(os.environ.get("HEADWATER_CACHE", Path.home() / ".cache" / "headwater"))
        port = int(os.environ.get("HEADWATER_KAFKA_PORT", "9092"))
        return cls(cache=cache, port=port, controller_port=port + 1)

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def libs(self) -> Path:
        return self.cache / f"kafka-{KAFKA_VERSION}" / "libs"

    @property
    def home(self) -> Path:
        return self.cache / f"broker-{self.port}"

    @property
    def _pid_file(self) -> Path:
        return self.home / "broker.pid"

    @property
    def log_file(self) -> Path:
        return self.home / "broker.log"

    # -- jars -------------------------------------------------------------------------------

    def fetch_jars(self) -> None:
        """Resolve the broker's jars from Maven Central once; later calls are no-ops."""
        marker = self.libs / ".complete"
        if marker.exists():
            return
        if shutil.which("mvn") is None:
            msg = "Maven ('mvn') is not on PATH: install it (Debian: apt-get install maven) to fetch Kafka"
            raise KafkaLocalError(msg)
        _require_java()
        work = self.libs.parent / "pom"
        work.mkdir(parents=True, exist_ok=True)
        pom = _POM.format(scala=SCALA_VERSION, kafka=KAFKA_VERSION, log4j=LOG4J_VERSION)
        (work / "pom.xml").write_text(pom)
        print(f"fetching Apache Kafka {KAFKA_VERSION} jars from Maven Central into {self.libs}")
        cmd = [
            "mvn", "-q", "-B", "dependency:copy-dependencies",
            f"-DoutputDirectory={self.libs}", "-DincludeScope=runtime",
        ]  # fmt: skip
        done = subprocess.run(cmd, cwd=work, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            msg = f"mvn could not fetch the Kafka jars:\n{done.stdout}\n{done.stderr}"
            raise KafkaLocalError(msg)
        marker.write_text(KAFKA_VERSION)

    # -- process ----------------------------------------------------------------------------

    def pid(self) -> int | None:
        """The broker's pid if it is alive, else None."""
        try:
            pid = int(self._pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return None
        # A stale pid file may name a pid that now belongs to something else: never signal that.
        return pid if b"kafka.Kafka" in cmdline else None

    def is_serving(self) -> bool:
        with socket.socket() as s:
            s.settimeout(0.5)
            return s.connect_ex((self.host, self.port)) == 0

    def partitions_on_disk(self) -> int:
        """How many partition directories the broker will load when it starts."""
        data = self.home / "data"
        return sum(1 for p in data.iterdir() if p.is_dir() and "-" in p.name) if data.is_dir() else 0

    def up(self, timeout: float = 300.0) -> None:
        """Start the broker unless it already runs, and wait until it accepts connections.

        The broker loads every partition on disk before it listens: a few seconds when fresh,
        minutes with tens of thousands of partitions left by earlier runs (``reset`` wipes them).
        """
        if self.pid() is not None and self.is_serving():
            print(f"Kafka already running on {self.bootstrap} (pid {self.pid()})")
            return
        if self.is_serving():
            msg = f"port {self.port} is taken by another process; set HEADWATER_KAFKA_PORT to another port"
            raise KafkaLocalError(msg)
        self.fetch_jars()
        java = _require_java()
        self.home.mkdir(parents=True, exist_ok=True)
        props = self._write_config()
        classpath = f"{self.libs}/*"
        if not (self.home / "data" / "meta.properties").exists():
            cluster_id = _cluster_id()
            fmt = [
                java, "-cp", classpath, "kafka.tools.StorageTool", "format",
                "--standalone", f"--cluster-id={cluster_id}", "-c", str(props), "--ignore-formatted",
            ]  # fmt: skip
            done = subprocess.run(fmt, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                msg = f"formatting the broker's storage failed:\n{done.stdout}\n{done.stderr}"
                raise KafkaLocalError(msg)
        cmd = [
            java, "-Xms256m", "-Xmx1g", f"-Dlog4j2.configurationFile={self.home / 'log4j2.yaml'}",
            "-cp", classpath, "kafka.Kafka", str(props),
        ]  # fmt: skip
        with self.log_file.open("ab") as log:
            proc = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,
            )  # fmt: skip
        self._pid_file.write_text(str(proc.pid))
        partitions = self.partitions_on_disk()
        if partitions > _MANY_PARTITIONS:
            print(f"starting Kafka with {partitions} partitions on disk: this takes a while "
                  "('headwater kafka reset' wipes the local broker's topics)")  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                tail = self.log_file.read_text(errors="replace")[-3000:]
                msg = f"Kafka exited with code {proc.returncode}; log {self.log_file}:\n{tail}"
                raise KafkaLocalError(msg)
            if self.is_serving():
                print(f"Kafka {KAFKA_VERSION} up on {self.bootstrap} (pid {proc.pid})")
                return
            time.sleep(0.25)
        self.down()
        msg = (f"Kafka did not accept connections within {timeout:.0f}s with {partitions} partitions on disk; "
               f"see {self.log_file}")  # fmt: skip
        raise KafkaLocalError(msg)

    def down(self, timeout: float = 30.0) -> None:
        pid = self.pid()
        if pid is None:
            print("Kafka is not running")
            self._pid_file.unlink(missing_ok=True)
            return
        os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.pid() is not None:
            time.sleep(0.2)
        if self.pid() is not None:
            os.killpg(pid, signal.SIGKILL)
        self._pid_file.unlink(missing_ok=True)
        print(f"Kafka stopped (pid {pid})")

    def status(self) -> bool:
        pid = self.pid()
        serving = self.is_serving()
        state = "up" if pid is not None and serving else "down"
        print(f"Kafka {state} on {self.bootstrap}" + (f" (pid {pid})" if pid else ""))
        return state == "up"

    def reset(self) -> None:
        self.down()
        shutil.rmtree(self.home, ignore_errors=True)
        print(f"removed {self.home}")

    def _write_config(self) -> Path:
        props = self.home / "server.properties"
        lines = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "listeners": f"PLAINTEXT://{self.host}:{self.port},CONTROLLER://{self.host}:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://{self.host}:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "controller.quorum.bootstrap.servers": f"{self.host}:{self.controller_port}",
            "log.dirs": str(self.home / "data"),
            "num.partitions": "4",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "4",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "false",
            "log.retention.hours": "24",
        }
        props.write_text("".join(f"{k}={v}\n" for k, v in lines.items()))
        (self.home / "log4j2.yaml").write_text(_LOG4J2)
        return props


def _require_java() -> str:
    java = shutil.which("java")
    if java is None:
        msg = "Java is not on PATH: install a JDK 17 or newer (Debian: apt-get install openjdk-17-jdk-headless)"
        raise KafkaLocalError(msg)
    return java


def _cluster_id() -> str:
    # Kafka cluster ids are 16 random bytes in URL-safe base64 without padding. One may begin
    # with "-", so it is passed as --cluster-id=ID, never as a separate argument.
    import base64

    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kafka-local", description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["up", "down", "status", "reset", "fetch"])
    args = parser.parse_args(argv)
    kafka = KafkaLocal.from_env()
    try:
        if args.action == "up":
            kafka.up()
        elif args.action == "down":
            kafka.down()
        elif args.action == "reset":
            kafka.reset()
        elif args.action == "fetch":
            kafka.fetch_jars()
        else:
            return 0 if kafka.status() else 1
    except KafkaLocalError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

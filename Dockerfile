# syntax=docker/dockerfile:1
# Headwater's image, for machines with a container engine:
#   docker build -t headwater:0.1.0 .                                                River and MOA
#   docker build -t headwater:0.1.0-torch --build-arg LOCK=image-torch.lock .       adds PyTorch (CUDA build)
# scripts/build-image builds the same filesystem without an engine (mmdebstrap, a chroot, crane) and is what
# the tests run: keep the two in step (the packages, the venv and its lock, the user, the config).
# Linux x86_64 only: the locks pin one wheel per package (scripts/lock-image).

ARG DEBIAN=debian:bookworm-slim
ARG VERSION=0.1.0

# The venv, from the lock (every wheel's hash checked) and Headwater's own wheel.
FROM ${DEBIAN} AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3.11 python3.11-venv \
 && rm -rf /var/lib/apt/lists/*
ARG LOCK=image.lock
COPY requirements/${LOCK} /tmp/image.lock
RUN python3.11 -m venv /opt/headwater \
 && /opt/headwater/bin/pip install --no-cache-dir --no-deps --require-hashes -r /tmp/image.lock
COPY pyproject.toml README.md /src/
COPY daemon /src/daemon
COPY dataflows /src/dataflows
COPY evaluators /src/evaluators
COPY learners /src/learners
RUN /opt/headwater/bin/pip wheel --no-cache-dir --no-deps -w /tmp/dist /src \
 && /opt/headwater/bin/pip install --no-cache-dir --no-deps /tmp/dist/*.whl

# What runs: Debian's python3.11 under the venv, a headless JDK 17 (MOA compiles its bridge with the JDK's
# compiler, which a JRE lacks), uid 10001. The root can be read-only: the daemon writes to its config's
# registry and recovery paths (a volume at the working directory) and to /tmp (MOA's bridge, the lane socket).
FROM ${DEBIAN}
ARG VERSION
LABEL org.opencontainers.image.title=headwater org.opencontainers.image.version=${VERSION}
# bookworm-slim leaves man pages out, and openjdk's postinst fails without /usr/share/man/man1.
RUN mkdir -p /usr/share/man/man1 \
 && apt-get update \
 && apt-get install -y --no-install-recommends python3.11 python3.11-venv openjdk-17-jdk-headless ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --uid 10001 --user-group --no-create-home --home-dir /var/lib/headwater --shell /usr/sbin/nologin headwater \
 && install -d -o 10001 -g 10001 /var/lib/headwater
COPY --from=build /opt/headwater /opt/headwater
ENV PATH=/opt/headwater/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
WORKDIR /var/lib/headwater
USER 10001
ENTRYPOINT ["headwater"]

# syntax=docker/dockerfile:1
# stream_lis worker image.
#
#   docker build -t stream-lis:0.1.0 .
#   docker run --rm -p 9464:9464 -v "$PWD/k8s/base/stream-lis.toml:/etc/stream-lis/config.toml:ro" \
#     stream-lis:0.1.0 --config /etc/stream-lis/config.toml --bootstrap broker:9092
#
# Needs BuildKit (default since Docker 23) for the bind mount of the final stage.
#
# Base: Debian 12 slim with CPython 3.11, pinned by tag. The tag is rebuilt by its maintainers
# with 3.11.x and Debian security fixes; pin it by digest too (python:3.11-slim-bookworm@sha256:...)
# once you have pulled it (the digest is only known to a registry client).

############################ build: wheels of stream_lis and every runtime dependency
FROM python:3.11-slim-bookworm AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# A compiler for any dependency that has no wheel for this platform. It stays in this stage.
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /src
COPY pyproject.toml README.md ./
COPY stream_lis ./stream_lis
# Runtime dependencies only: no [test] extra.
RUN pip wheel --wheel-dir /wheels .

############################ runtime
FROM python:3.11-slim-bookworm AS runtime

# NUMBA_CACHE_DIR: the learners' compiled loops are cached there (the root filesystem can be
# read-only; /tmp is the pod's emptyDir), so a worker compiles them once per pod, not per restart.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    NUMBA_CACHE_DIR=/tmp/numba-cache \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN groupadd --system --gid 10001 stream-lis \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin stream-lis

# Install from the build stage's wheels only (--no-index: nothing else is fetched). The wheels
# are bind-mounted, not copied, so they are not left in a layer.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels stream-lis

LABEL org.opencontainers.image.title="stream-lis" \
      org.opencontainers.image.description="Streaming Leakage Impact Score (LIS) and AIS for recommender experiments, as Prometheus metrics" \
      org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.licenses="Apache-2.0"

# Numeric uid so Kubernetes' runAsNonRoot can verify it; the root filesystem can be read-only
# (the worker writes nothing but to /tmp).
USER 10001:10001
WORKDIR /tmp

EXPOSE 9464

# /healthz: the process is alive (shallow; readiness is /readyz). No curl in slim: Python.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:9464/healthz', timeout=4).status == 200 else 1)"]

ENTRYPOINT ["stream-lis", "worker"]

"""Kafka connection settings from the config and the environment; secrets never printed.

>>> from stream_lis.config import KafkaConfig
>>> kw = client_kwargs(KafkaConfig(security_protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-512",
...                                sasl_username="svc"), env={"STREAM_LIS_KAFKA_SASL_PASSWORD": "s3cret"})
>>> kw["sasl_plain_password"], "s3cret" in describe(kw)
('s3cret', False)
"""

from __future__ import annotations

import os
from typing import Any, Mapping

from ...config import ConfigError, KafkaConfig, bootstrap_addresses, parse_duration

SECRET_KEYS = {"sasl_plain_password", "ssl_password"}


def bootstrap(cfg: KafkaConfig, env: Mapping[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    return env.get("STREAM_LIS_BOOTSTRAP") or cfg.bootstrap_servers


def client_kwargs(cfg: KafkaConfig, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Keyword arguments shared by kafka-python's producer, consumer and admin client."""
    env = os.environ if env is None else env
    # reconnect_backoff_max_ms: kafka-python backs off up to 30 s between attempts to reach a
    # broker that went away, so a worker went on up to a minute after the broker was back.
    servers = bootstrap_addresses(bootstrap(cfg, env), "--bootstrap / STREAM_LIS_BOOTSTRAP"
                                  if env.get("STREAM_LIS_BOOTSTRAP") else "kafka.bootstrap_servers")
    kw: dict[str, Any] = {"bootstrap_servers": servers, "client_id": cfg.client_id,
                          "security_protocol": cfg.security_protocol, "reconnect_backoff_max_ms": 2000}
    if cfg.security_protocol.startswith("SASL"):
        if not cfg.sasl_mechanism:
            raise ConfigError("kafka.sasl_mechanism is required with a SASL security_protocol (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512)")
        password = env.get(cfg.sasl_password_env)
        if password is None:
            raise ConfigError(f"SASL needs the password in the environment variable {cfg.sasl_password_env}")
        kw.update(sasl_mechanism=cfg.sasl_mechanism, sasl_plain_username=cfg.sasl_username or env.get("STREAM_LIS_KAFKA_SASL_USERNAME"),
                  sasl_plain_password=password)
    for key in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
        if getattr(cfg, key):
            kw[key] = getattr(cfg, key)
    return kw


def describe(kw: Mapping[str, Any]) -> str:
    """The settings for logs, with secrets masked."""
    return ", ".join(f"{k}={'***' if k in SECRET_KEYS else v}" for k, v in sorted(kw.items()))


def crc_accelerated() -> bool:
    """kafka-python verifies and computes record-batch CRC32Cs in C only with ``crc32c``."""
    try:
        from kafka.record import util
    except ImportError:  # pragma: no cover
        return False
    return getattr(util, "crc32c_c", None) is not None


def consumer_tuning(cfg: KafkaConfig) -> dict[str, Any]:
    """The fetch settings of the stages' consumers (the config's transport knobs, checked
    when the config was loaded)."""
    return {"max_poll_records": cfg.max_poll_records, "fetch_min_bytes": cfg.fetch_min_bytes,
            "fetch_max_wait_ms": max(1, parse_duration(cfg.fetch_max_wait)),
            "max_partition_fetch_bytes": cfg.max_partition_fetch_bytes, "check_crcs": cfg.check_crcs}


#: kafka-python's check for each codec's library (the package each needs is optional).
_CODEC_CHECKS = {"gzip": "has_gzip", "lz4": "has_lz4", "snappy": "has_snappy", "zstd": "has_zstd"}
_CODEC_PACKAGES = {"gzip": "(the standard library)", "lz4": "lz4", "snappy": "python-snappy", "zstd": "zstandard"}


def producer_tuning(cfg: KafkaConfig) -> dict[str, Any]:
    """Batching and compression of the worker's producer; a ``ConfigError`` for a codec whose
    library is not installed (said at start, before any topic is created, not as the
    client's traceback)."""
    if cfg.compression_type in _CODEC_CHECKS:
        from kafka import codec

        if not getattr(codec, _CODEC_CHECKS[cfg.compression_type])():
            raise ConfigError(f"kafka.compression_type = {cfg.compression_type!r} needs the "
                              f"{_CODEC_PACKAGES[cfg.compression_type]} package, which is not installed "
                              "(pip install it, or choose gzip or none)")
    return {"linger_ms": parse_duration(cfg.producer_linger), "batch_size": cfg.producer_batch_bytes,
            "compression_type": None if cfg.compression_type == "none" else cfg.compression_type}

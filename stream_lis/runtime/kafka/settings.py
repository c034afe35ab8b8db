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

from ...config import ConfigError, KafkaConfig

SECRET_KEYS = {"sasl_plain_password", "ssl_password"}


def bootstrap(cfg: KafkaConfig, env: Mapping[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    return env.get("STREAM_LIS_BOOTSTRAP") or cfg.bootstrap_servers


def client_kwargs(cfg: KafkaConfig, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Keyword arguments shared by kafka-python's producer, consumer and admin client."""
    env = os.environ if env is None else env
    kw: dict[str, Any] = {"bootstrap_servers": bootstrap(cfg, env).split(","), "client_id": cfg.client_id,
                          "security_protocol": cfg.security_protocol}
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

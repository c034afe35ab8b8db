"""A bad setting fails when the config is loaded, naming the key: not later, when a worker
builds its consumers or an arm hits a limit."""

from __future__ import annotations

from pathlib import Path

import pytest

from stream_lis.config import ConfigError, load_config


@pytest.mark.parametrize("key, value, names", [
    ("kafka.compression_type", "brotli", "kafka.compression_type"),
    ("kafka.input_keys", "user_id", "kafka.input_keys"),
    ("kafka.envelope_records", 0, "envelope_records"),
    ("kafka.max_poll_records", 0, "max_poll_records"),
    ("kafka.fetch_max_wait", "soon", "kafka.fetch_max_wait"),
    ("kafka.producer_linger", -1, "kafka.producer_linger"),
    ("kafka.side_topic_refresh", "0s", "kafka.side_topic_refresh"),
    ("kafka.group_id", "", "kafka.group_id"),
    ("learner.model", "os.path", "not a class"),
    ("kafka.bootstrap_servers", "", "kafka.bootstrap_servers"),
    ("kafka.client_id", " ", "kafka.client_id"),
    ("kafka.checkpoint_interval", "0s", "kafka.checkpoint_interval"),
    ("kafka.heartbeat_interval", 0, "kafka.heartbeat_interval"),
    ("runtime.max_batch_delay", "never", "runtime.max_batch_delay"),
    ("runtime.gc_threshold", -5, "runtime.gc_threshold"),
    ("limits.max_arms", 0, "limits.max_arms"),
    ("limits.max_held_examples", 0, "limits.max_held_examples"),
    ("limits.max_log_events", 0, "limits.max_log_events"),
    # a misspelt protocol would otherwise connect in plaintext, without authentication
    ("kafka.security_protocol", "ssl", "kafka.security_protocol"),
    ("kafka.security_protocol", "SASL-SSL", "kafka.security_protocol"),
    ("kafka.sasl_mechanism", "scram", "kafka.sasl_mechanism"),
    ("learner.model", "nonexistent.Model", "learner.model"),
    ("learner.model", "river.linear_model.NoSuchModel", "learner.model"),
    # one bin holds every score: every cumulative AUC would be 0.5
    ("evaluation.cumulative_bins", 1, "evaluation.cumulative_bins"),
    # a probe with nothing to say is left out of probes.enabled, not configured empty
    ("probes.noise_dims", 0, "probes.noise_dims"),
    ("probes.co_click_top_k", 0, "probes.co_click_top_k"),
    ("probes.noise_scale", -1.0, "probes.noise_scale"),
    ("probes.future_item_prior_strength", -5.0, "probes.future_item_prior_strength"),
    # an experiment ended before its last impressions are labelled and evaluated loses them,
    # and their late labels recreate its arms with fresh learners, again and again
    ("time.experiment_idle_timeout", "10m", "time.experiment_idle_timeout"),
])
def test_a_bad_value_is_rejected_with_its_key(key, value, names):
    with pytest.raises(ConfigError, match=names.replace(".", r"\.")):
        load_config(None, {key: value})


def test_the_defaults_and_the_shipped_examples_load():
    load_config(None, {})
    root = Path(__file__).resolve().parents[1]
    load_config(root / "examples" / "config.toml")
    load_config(root / "k8s" / "base" / "stream-lis.toml")


def test_a_quoted_number_of_seconds_is_a_duration_like_the_number():
    """``--set time.horizon='"90"'`` or ``horizon = "90"`` in TOML: the same 90 s as ``90``."""
    assert load_config(None, {"time.horizon": "90"}).time.horizon_ms == 90_000
    assert load_config(None, {"time.horizon": "1.5"}).time.horizon_ms == 1_500
    with pytest.raises(ConfigError, match="time.horizon"):
        load_config(None, {"time.horizon": "-90"})

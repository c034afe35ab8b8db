"""Configuration: every knob of the evaluation, typed and validated in one place.

Time semantics are explicit configuration, never implicit: the attribution window, the
look-ahead horizon and the allowed lateness are all *event-time* durations (see
``TimeConfig``). Configs are TOML or YAML files decoded straight into ``msgspec`` structs, so
a typo or a wrong type fails at start-up with the path of the offending key rather than deep
inside a running worker.

>>> cfg = Config()
>>> cfg.time.attribution_window_ms, cfg.time.horizon_ms
(1800000, 3600000)
>>> parse_duration("90s"), parse_duration("1h30m"), parse_duration(2.5)
(90000, 5400000, 2500)
"""

from __future__ import annotations

import difflib
import functools
import importlib
import math
import pathlib
import re
import typing
from typing import Any

import msgspec

from .names import unfit

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_SECONDS = re.compile(r"\d+(?:\.\d+)?")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}

#: Probes that ship with stream_lis (``stream_lis.probes``).
BUILTIN_PROBES = ("next_click", "future_item", "co_click", "noise", "external")


class ConfigError(ValueError):
    """A configuration that cannot be used; the message names the key and the reason."""


@functools.lru_cache(maxsize=256, typed=True)  # typed: True must not hit a cached 1
def parse_duration(value: str | int | float) -> int:
    """Parse ``"30m"``, ``"1h30m"``, ``"500ms"`` or a number of seconds (``90``, ``"90"``) into milliseconds.

    Memoised: the ``*_ms`` properties of the config parse on every read, and some are read
    per release or per poll."""
    if isinstance(value, bool):
        raise ConfigError(f"not a duration: {value!r}")
    if isinstance(value, (int, float)):
        if not math.isfinite(value) or value < 0:
            raise ConfigError(f"duration must be a finite number of seconds >= 0, got {value!r}")
        return int(round(value * 1000))
    text = value.strip().lower().replace(" ", "")
    if _SECONDS.fullmatch(text):  # "90": seconds, as the number 90 would be
        return int(round(float(text) * 1000))
    pos, total = 0, 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNIT_MS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise ConfigError(f"not a duration: {value!r} (use e.g. '500ms', '90s', '30m', '1h30m')")
    return int(round(total))


Duration = str | int | float


class TimeConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Event-time semantics.

    * ``attribution_window`` (W): a click counts for an impression if its event time is
      within W of the impression's; the label is final once the watermark passes ``ts + W``.
    * ``horizon`` (H): a labelled example is evaluated only once the watermark passes
      ``ts + H``; leaky probes see the window ``(ts, ts + H]``. Examples are held for
      ``max(W, H)``.
    * ``allowed_lateness``: the watermark is the largest event time seen minus this; events
      older than the watermark are late and dead-lettered.
    * ``experiment_idle_timeout``: an experiment with no event for this long (event time)
      has ended; its state and metric series are dropped.
    """

    attribution_window: Duration = "30m"
    horizon: Duration = "1h"
    allowed_lateness: Duration = "2m"
    experiment_idle_timeout: Duration = "6h"

    @property
    def attribution_window_ms(self) -> int:
        return parse_duration(self.attribution_window)

    @property
    def horizon_ms(self) -> int:
        return parse_duration(self.horizon)

    @property
    def allowed_lateness_ms(self) -> int:
        return parse_duration(self.allowed_lateness)

    @property
    def experiment_idle_timeout_ms(self) -> int:
        return parse_duration(self.experiment_idle_timeout)


class ExperimentConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A declared experiment; events for undeclared arms are invalid (``unknown_arm``)."""

    name: str
    arms: list[str]


class ExternalProbeConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """The user's preference dataset: records ``{item_id, vector}`` or ``{item_id, items}``."""

    #: A JSON Lines file of the records (every runtime).
    path: str | None = None
    #: The Kafka worker also reads the compacted ``kafka.topics.preferences`` topic (records
    #: keyed by item id; a null value deletes the item): all of it before its first
    #: evaluation, then every update as it arrives. With ``path`` too, the file is loaded
    #: first and the topic's records override it.
    from_topic: bool = False


class EmbeddingsConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Each arm's MLLM item representation from a table beside the stream, for impressions
    that carry no inline ``embedding``: records ``{arm, item_id, vector}`` and optionally
    ``experiment`` (without one a record holds for that arm in every experiment)."""

    #: A JSON Lines file of the records (every runtime).
    path: str | None = None
    #: The Kafka worker also reads the compacted ``kafka.topics.embeddings`` topic: all of it
    #: before its first evaluation, then every update; a null value deletes what its key set.
    #: With ``path`` too, the file is loaded first and the topic's records override it.
    from_topic: bool = False


class ProbesConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Which preference-data probes run, one ``leaky:<probe>`` learner each."""

    enabled: list[str] = msgspec.field(
        default_factory=lambda: ["future_item", "next_click", "co_click", "noise"]
    )
    co_click_top_k: int = 5
    future_item_prior_strength: float = 20.0
    noise_dims: int = 1
    noise_scale: float = 0.3
    external: ExternalProbeConfig = msgspec.field(default_factory=ExternalProbeConfig)


class LearnerConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """The online learner used for every learner of an arm.

    ``model`` is ``"ftrl"`` (the built-in hashed-feature logistic regression, vectorised over
    micro-batches), ``"fm"`` (the built-in hashed factorisation machine: the same linear part
    plus pairwise factor interactions, also vectorised) or the dotted path of any River
    classifier, e.g. ``"river.linear_model.LogisticRegression"`` (run one event at a time).
    ``params`` are the model's keyword arguments (e.g. ``{"alpha": 0.2}`` for ftrl,
    ``{"k": 8, "lr": 0.02}`` for fm).
    """

    model: str = "ftrl"
    params: dict[str, Any] = msgspec.field(default_factory=dict)
    hash_bits: int = 20
    #: Pairs of categorical features crossed into one feature (user-context interactions).
    crosses: list[list[str]] = msgspec.field(default_factory=list)
    #: Examples scored together then learnt together; deterministic chunks of this size.
    batch_size: int = 512


class EvaluationConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Windows and confidence levels of the reported numbers."""

    window_size: int = 20_000
    confidence_level: float = 0.95
    #: Bins of the since-start AUC; its stated error bound is exported next to it.
    cumulative_bins: int = 1 << 14


class LimitsConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Bounds that keep a worker alive on bad input and flat in memory on an endless stream."""

    max_event_bytes: int = 65_536
    max_embedding_dims: int = 1024
    max_pending_impressions: int = 2_000_000
    max_string_length: int = 512
    #: Events dated further than this ahead of the wall clock are rejected (``future_event``):
    #: one record from a skewed clock (a producer writing local time as UTC, say) would
    #: otherwise move the watermark past everything else, close every window at once and make
    #: every real event until then late. An event up to ``S`` ahead still moves the watermark
    #: ``S - allowed_lateness`` past the real time: the default equals the default lateness,
    #: so it moves it nowhere. ``0`` disables the check (a replay of events dated ahead).
    max_future_skew: Duration = "2m"
    #: Labelled examples one arm holds while their look-ahead horizon runs. Past it the
    #: oldest are dropped unevaluated, counted in ``stream_lis_shed_total{bound="lookahead"}``
    #: and logged: a stalled watermark must not grow memory without end.
    max_held_examples: int = 1_000_000
    #: Events (impressions + clicks) one arm's behaviour log keeps for the probes. Past it the
    #: oldest are pruned early (probes then see less of the future window), counted as
    #: ``bound="behaviour_log"`` and logged.
    max_log_events: int = 4_000_000
    #: (experiment, arm) pairs evaluated at once. An impression of one more arm is rejected
    #: (``shed_overload``) unless an arm has been idle for ``time.experiment_idle_timeout``:
    #: every arm costs its learners' tables (``learner.hash_bits``), so a stream of made-up arm
    #: names must not exhaust memory. Declared experiments (``experiments``) bound it anyway.
    max_arms: int = 64


class KafkaTopicsConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Topic names. ``impressions`` and ``clicks`` must be co-partitioned (same partition count,
    keyed by impression id); ``labelled`` carries each arm's records to the worker owning it."""

    impressions: str = "impressions"
    clicks: str = "clicks"
    preferences: str = "preferences"
    embeddings: str = "embeddings"
    labelled: str = "stream-lis-labelled"
    dead_letters: str = "dead-letters"
    checkpoints: str = "stream-lis-checkpoints"


class KafkaConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Connection, topics and the worker's time knobs.

    Secrets never live in the file: ``sasl_password`` is read from the environment variable
    named by ``sasl_password_env`` (default ``STREAM_LIS_KAFKA_SASL_PASSWORD``); the bootstrap
    servers may be overridden by ``STREAM_LIS_BOOTSTRAP``.
    """

    bootstrap_servers: str = "127.0.0.1:9092"
    client_id: str = "stream-lis"
    group_id: str = "stream-lis"
    partitions: int = 4
    replication_factor: int = 1
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password_env: str = "STREAM_LIS_KAFKA_SASL_PASSWORD"
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    topics: KafkaTopicsConfig = msgspec.field(default_factory=KafkaTopicsConfig)
    #: What producers key both input topics by, which is what puts a click on its impression's
    #: partition. ``impression_id`` (the default): a record keyed otherwise is still joined but
    #: counted (``stream_lis_input_key_mismatch_total``) and logged. ``any``: both topics are
    #: keyed alike by another field (a user or session id), which co-partitions them as well;
    #: keys are not compared with the impression id, and only records without one are counted.
    input_keys: str = "impression_id"
    #: How often state is checkpointed with the offsets it reflects (wall time).
    checkpoint_interval: Duration = "5s"
    #: A partition with no record for this long (wall time) while caught up is idle: its
    #: watermark moves on without events, so a quiet partition never stalls windows
    #: (how far: ``watermark.idle_targets``).
    idle_partition_timeout: Duration = "10s"
    #: A partition's impressions and clicks are processed in event-time order across the two
    #: topics: records of one wait until the other is read past them, or until the other is
    #: read to its end and has had no record for this long. So a quiet clicks topic holds
    #: impressions back no longer than this (part of the freshness budget); raise it for fast
    #: replays, where a producer's batches can put the topics minutes of event time apart.
    cross_topic_hold: Duration = "500ms"
    #: How often the join stage tells the evaluation stage its partitions' watermarks (an
    #: arm's partition that gets no records from an input partition learns its watermark
    #: only so: part of the freshness budget).
    heartbeat_interval: Duration = "200ms"
    #: A heartbeat that would tell a ``labelled`` partition nothing new (the input partition's
    #: clock stands where its last records or heartbeat there said: a quiet or idle
    #: partition) is sent only this often. It bounds how long an evaluation partition's new
    #: owner that has no checkpoint waits for the clocks; at least ``heartbeat_interval``.
    heartbeat_repeat: Duration = "5s"
    #: A loop (join or evaluation stage, a side table's feed) that has not gone round for this
    #: long (wall time) fails ``/healthz``, so the orchestrator restarts a wedged worker
    #: (which resumes from its last checkpoint). Loops beat while they restore a checkpoint or
    #: wait for a side table, between the steps of a rebalance, and through broker outages,
    #: so only a loop stuck in one call trips it. Keep it above 2.5 minutes, the longest
    #: single wait the worker bounds itself (a flush: the producer's 2-minute delivery
    #: timeout plus 30 s), so that such a wait stops the worker first, saying why (a worker
    #: started with less logs a warning). "0" turns the check off.
    stall_timeout: Duration = "3m"
    #: The stages' consumers' rebalance timeout (kafka-python's ``max_poll_interval_ms``): how
    #: long the broker holds a group join open for the members still giving their partitions
    #: up, and how long a member may go between polls before it is dropped from the group.
    #: A stage that has been without an assignment for this long plus ``stall_timeout`` fails
    #: ``/healthz`` (a join that never ended leaves the stage polling, owning nothing; time
    #: while the broker does not answer is not counted). Restoring or saving partitions in a
    #: rebalance must fit in it too, or the member leaves the group: keep it well above the
    #: longest restore. At least 10 s, the stages' session timeout.
    rebalance_timeout: Duration = "5m"
    #: How long a starting worker waits for its broker to answer (a cluster coming up, a
    #: rolling restart) before it exits with status 1. It serves ``/healthz`` (ok) and
    #: ``/readyz`` (503) meanwhile, and goes on as soon as the broker answers. At least 1s.
    startup_timeout: Duration = "5m"
    #: How often a side-table feed (``preferences``, ``embeddings``) looks for partitions
    #: added to its topic while it runs (a new partition is read from its beginning), and the
    #: join stage for partitions added to one input topic (``stream_lis_input_copartitioned``).
    side_topic_refresh: Duration = "30s"
    #: Largest checkpoint message; the checkpoint topic is created to fit it (its
    #: ``max.message.bytes``). A larger checkpoint (at the memory bounds a partition's state
    #: compresses to hundreds of megabytes) is written in parts of this size.
    max_checkpoint_bytes: int = 64 * 1024 * 1024
    #: Environment variable holding the key that signs checkpoints (HMAC-SHA256): with it set,
    #: a checkpoint without a valid signature is refused before it is unpickled. Unset, the
    #: checkpoint topic must be writable by the workers alone.
    checkpoint_key_env: str = "STREAM_LIS_CHECKPOINT_KEY"
    # -- transport tuning (throughput; the defaults suit a worker ingesting tens of
    # thousands of records per second; none of them changes a figure) --------------------
    #: Most records one consumer poll returns (the join stage processes a poll under its lock,
    #: which a scrape of /metrics waits for; fetches are as large either way).
    max_poll_records: int = 5_000
    #: The broker answers a fetch once it has this many bytes for the consumer, or after
    #: ``fetch_max_wait`` (so a quiet topic still answers promptly: freshness).
    fetch_min_bytes: int = 64 * 1024
    fetch_max_wait: Duration = "100ms"
    #: Largest chunk of one input partition per fetch (the ``labelled`` topic fetches up to
    #: its 32 MiB message size).
    max_partition_fetch_bytes: int = 8 * 1024 * 1024
    #: Verify the CRC32C of fetched record batches. Cheap with the ``crc32c`` package
    #: installed (kafka-python's C accelerator); without it kafka-python computes it in pure
    #: Python, which can take half a worker's CPU (the worker logs a warning then).
    check_crcs: bool = True
    #: Read fetched records with aiokafka's compiled reader rather than kafka-python's
    #: pure-Python one (``runtime/kafka/fetch.py``: the same records, about 8 times less CPU
    #: per record through the consumer). False keeps kafka-python's reader.
    fast_fetch: bool = True
    #: Producer (``labelled`` envelopes, dead letters, checkpoints): how long a batch may wait
    #: to fill, its size, and its compression (``none``, ``gzip``; ``lz4``, ``snappy`` and
    #: ``zstd`` need their Python package).
    producer_linger: Duration = "5ms"
    producer_batch_bytes: int = 1024 * 1024
    compression_type: str = "none"
    #: Most arm records per ``labelled`` message (an envelope is also split once it exceeds
    #: 1 MiB encoded). Fewer, larger messages keep the clients' per-message cost off the
    #: per-impression path.
    envelope_records: int = 2000


class RuntimeConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Process tuning shared by the embedded runtime and the worker (changes no figure)."""

    #: Python's young-generation garbage-collector threshold (its default is 700). The
    #: pipeline allocates millions of short-lived objects while holding a large live state
    #: (pending impressions, behaviour logs); with the default, collections that scan that
    #: state run every few hundred records. ``0`` keeps Python's default.
    gc_threshold: int = 50_000
    #: Longest a released example waits for its chunk to fill before it is evaluated anyway,
    #: on live input (the worker; the embedded runtime reading stdin), per arm: a quiet arm
    #: beside busy ones too. The freshness budget: an example shows in /metrics about this
    #: long (plus transport) after its horizon closed. Replays of files cut chunks by count
    #: alone, so their figures do not depend on timing.
    max_batch_delay: Duration = "500ms"


class Config(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Top-level configuration; every section has defaults, so an empty file is valid."""

    #: Declared experiments; when empty every (experiment, arm) seen in events is accepted.
    experiments: list[ExperimentConfig] = msgspec.field(default_factory=list)
    time: TimeConfig = msgspec.field(default_factory=TimeConfig)
    probes: ProbesConfig = msgspec.field(default_factory=ProbesConfig)
    embeddings: EmbeddingsConfig = msgspec.field(default_factory=EmbeddingsConfig)
    learner: LearnerConfig = msgspec.field(default_factory=LearnerConfig)
    evaluation: EvaluationConfig = msgspec.field(default_factory=EvaluationConfig)
    limits: LimitsConfig = msgspec.field(default_factory=LimitsConfig)
    runtime: RuntimeConfig = msgspec.field(default_factory=RuntimeConfig)
    kafka: KafkaConfig = msgspec.field(default_factory=KafkaConfig)

    def __post_init__(self) -> None:
        validate(self)

    def declared_arms(self) -> dict[str, set[str]] | None:
        """``{experiment: {arms}}`` or ``None`` when arms are not declared."""
        if not self.experiments:
            return None
        return {e.name: set(e.arms) for e in self.experiments}


def bootstrap_addresses(value: str, what: str) -> list[str]:
    """The ``HOST[:PORT]`` entries of a comma-separated bootstrap list (IPv6 hosts in
    brackets), checked here so a typo is one line at start, not a traceback from inside the
    Kafka client (which parses them only when it connects).

    >>> bootstrap_addresses("b1:9092, [::1]:9093,b3", "x")
    ['b1:9092', '[::1]:9093', 'b3']
    >>> bootstrap_addresses("localhost:notaport", "--bootstrap")
    Traceback (most recent call last):
    ...
    stream_lis.config.ConfigError: --bootstrap: 'localhost:notaport' is not HOST:PORT with a port in 1..65535
    """
    out = [a.strip() for a in value.split(",")]
    if not value.strip() or not all(out):
        raise ConfigError(f"{what} must not be empty or have an empty entry (HOST:PORT[,HOST:PORT...]), got {value!r}")
    for a in out:
        host, port = a, None
        if a.startswith("["):
            end = a.find("]")
            host, rest = a[1:end] if end > 0 else "", a[end + 1:] if end > 0 else "?"
            if rest:
                port = rest[1:] if rest.startswith(":") else "?"
        elif a.count(":") == 1:
            host, port = a.split(":")
        elif ":" in a:
            host = ""  # an IPv6 address needs brackets to carry a port
        ok = bool(host) and not any(c.isspace() for c in host) and (
            port is None or (port.isdigit() and 1 <= int(port) <= 65535))
        if not ok:
            raise ConfigError(f"{what}: {a!r} is not HOST:PORT with a port in 1..65535")
    return out


def _check_durations(section: str, obj: object, keys: tuple[str, ...]) -> None:
    for key in keys:
        try:
            parse_duration(getattr(obj, key))
        except ConfigError as exc:
            raise ConfigError(f"{section}.{key}: {exc}") from None


#: ``learner.model`` values naming the built-in vectorised learners (``learners.BUILTIN``).
BUILTIN_LEARNERS = ("ftrl", "fm")
SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


def validate(cfg: Config) -> None:
    """Cross-field checks msgspec's types cannot express."""
    t = cfg.time
    _check_durations("time", t, ("attribution_window", "horizon", "allowed_lateness", "experiment_idle_timeout"))
    if t.attribution_window_ms <= 0:
        raise ConfigError("time.attribution_window must be > 0")
    longer = "horizon" if t.horizon_ms >= t.attribution_window_ms else "attribution_window"
    if t.experiment_idle_timeout_ms < getattr(t, longer + "_ms"):
        raise ConfigError(f"time.experiment_idle_timeout ({t.experiment_idle_timeout}) must be at least "
                          f"max(time.attribution_window, time.horizon) (time.{longer} = {getattr(t, longer)}): an "
                          "experiment ended sooner loses the labels and figures of its last impressions")
    unknown = [p for p in cfg.probes.enabled if p not in BUILTIN_PROBES]
    if unknown:
        close = [f"{p!r}: did you mean {m[0]!r}?" for p in unknown if (m := difflib.get_close_matches(p, BUILTIN_PROBES, n=1))]
        raise ConfigError(f"probes.enabled: unknown probe(s) {unknown}{' (' + '; '.join(close) + ')' if close else ''}; "
                          f"known: {list(BUILTIN_PROBES)}")
    if len(set(cfg.probes.enabled)) != len(cfg.probes.enabled):
        raise ConfigError("probes.enabled lists a probe twice")
    ext = cfg.probes.external
    if "external" in cfg.probes.enabled and not (ext.path or ext.from_topic):
        raise ConfigError("probes.enabled has 'external' but neither probes.external.path nor "
                          "probes.external.from_topic is set")
    if "external" not in cfg.probes.enabled and (ext.path or ext.from_topic):
        raise ConfigError("probes.external." + ("path" if ext.path else "from_topic") + " is set but 'external' is "
                          "not in probes.enabled: add it there, or the dataset is never read")
    pc = cfg.probes
    if pc.noise_dims < 1 or pc.co_click_top_k < 1:
        raise ConfigError("probes.noise_dims and probes.co_click_top_k must be >= 1 (to leave a probe out, drop it "
                          "from probes.enabled)")
    # Each is a column per example of every leaky learner's batch: past these, a batch takes
    # gigabytes before the first chunk is scored.
    if pc.noise_dims > 1024 or pc.co_click_top_k > 1000:
        raise ConfigError("probes.noise_dims must be at most 1024 and probes.co_click_top_k at most 1000 (columns of "
                          "every example's leaked features)")
    if not (math.isfinite(pc.noise_scale) and pc.noise_scale > 0):
        raise ConfigError(f"probes.noise_scale must be a finite number > 0, got {pc.noise_scale!r}")
    if not (math.isfinite(pc.future_item_prior_strength) and pc.future_item_prior_strength >= 0):
        raise ConfigError(f"probes.future_item_prior_strength must be a finite number >= 0, "
                          f"got {pc.future_item_prior_strength!r}")
    if not 16 <= cfg.evaluation.cumulative_bins <= 1 << 24:
        # One bin puts every score in it: every cumulative AUC would be 0.5.
        raise ConfigError(f"evaluation.cumulative_bins must be in [16, {1 << 24}], got {cfg.evaluation.cumulative_bins}")
    if not 0.5 < cfg.evaluation.confidence_level < 1:
        raise ConfigError("evaluation.confidence_level must be in (0.5, 1)")
    if not 100 <= cfg.evaluation.window_size <= 10_000_000:
        # The window holds a float per learner per example, per arm: 10M is about 0.6 GB an arm.
        raise ConfigError("evaluation.window_size must be in [100, 10,000,000]")
    if not 8 <= cfg.learner.hash_bits <= 26:
        raise ConfigError("learner.hash_bits must be in [8, 26]")
    if cfg.learner.batch_size < 1:
        raise ConfigError("learner.batch_size must be >= 1")
    model = cfg.learner.model
    if model not in BUILTIN_LEARNERS:
        # A River class by dotted path: import it now, not when the first arm is built.
        module, _, name = model.rpartition(".")
        try:
            obj = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError, ValueError) as exc:
            raise ConfigError(f"learner.model: {model!r} is neither {' nor '.join(BUILTIN_LEARNERS)} nor an importable "
                              f"class ({exc})") from None
        if not isinstance(obj, type):
            raise ConfigError(f"learner.model: {model!r} is a {type(obj).__name__}, not a class (a River classifier, "
                              f"e.g. river.linear_model.LogisticRegression)")
    for cross in cfg.learner.crosses:
        if len(cross) != 2:
            raise ConfigError(f"learner.crosses entries are pairs, got {cross}")
    _check_durations("limits", cfg.limits, ("max_future_skew",))
    if not 0 <= cfg.runtime.gc_threshold < 1 << 31:  # Python's gc takes a C int
        raise ConfigError("runtime.gc_threshold must be in [0, 2147483647]")
    _check_durations("runtime", cfg.runtime, ("max_batch_delay",))
    for key in ("max_pending_impressions", "max_held_examples", "max_log_events", "max_arms"):
        if getattr(cfg.limits, key) < 1:
            raise ConfigError(f"limits.{key} must be >= 1")
    # Below these every record (or every impression) is rejected, and an oversized record's
    # dead letter keeps nothing of it.
    if cfg.limits.max_event_bytes < 256:
        raise ConfigError("limits.max_event_bytes must be >= 256 (a minimal impression takes about 120 bytes)")
    if cfg.limits.max_string_length < 1 or cfg.limits.max_embedding_dims < 1:
        raise ConfigError("limits.max_string_length and limits.max_embedding_dims must be >= 1")
    k = cfg.kafka
    _check_durations("kafka", k, ("checkpoint_interval", "idle_partition_timeout", "cross_topic_hold", "heartbeat_interval",
                                  "heartbeat_repeat", "side_topic_refresh", "stall_timeout", "rebalance_timeout", "startup_timeout",
                                  "fetch_max_wait", "producer_linger"))
    if min(k.max_poll_records, k.envelope_records, k.fetch_min_bytes, k.max_partition_fetch_bytes,
           k.producer_batch_bytes) < 1:
        raise ConfigError("kafka.max_poll_records, envelope_records, fetch_min_bytes, max_partition_fetch_bytes "
                          "and producer_batch_bytes must be >= 1")
    bootstrap_addresses(k.bootstrap_servers, "kafka.bootstrap_servers")
    if not k.group_id.strip() or not k.client_id.strip():
        # An empty group id is kafka-python's "no group": no offsets committed, no partitions
        # shared, every worker reading everything.
        raise ConfigError("kafka.group_id and kafka.client_id must not be empty")
    # Zero would checkpoint (or send a heartbeat envelope) on every poll: a flood, not a cadence.
    if parse_duration(k.checkpoint_interval) < 100:
        raise ConfigError("kafka.checkpoint_interval must be at least 100ms (each checkpoint writes the state)")
    if parse_duration(k.heartbeat_interval) < 10:
        raise ConfigError("kafka.heartbeat_interval must be at least 10ms (each heartbeat is a message per arm "
                          "partition)")
    if parse_duration(k.heartbeat_repeat) < parse_duration(k.heartbeat_interval):
        raise ConfigError(f"kafka.heartbeat_repeat ({k.heartbeat_repeat}) must be at least kafka.heartbeat_interval "
                          f"({k.heartbeat_interval}): unchanged clocks are told again at most once per heartbeat")
    if 0 < parse_duration(k.stall_timeout) < 1000:
        # Below a second, a poll that waits for the broker (up to fetch_max_wait) or a scrape
        # holding a stage's lock would read as a stall.
        raise ConfigError("kafka.stall_timeout must be 0 (off) or at least 1s")
    if parse_duration(k.rebalance_timeout) < 10_000:
        # The broker drops a member silent for its session timeout (10 s in the stages) anyway.
        raise ConfigError("kafka.rebalance_timeout must be at least 10s (the stages' session timeout)")
    if parse_duration(k.startup_timeout) < 1000:
        raise ConfigError("kafka.startup_timeout must be at least 1s (how long a starting worker waits for its broker)")
    if parse_duration(k.side_topic_refresh) < 100:
        raise ConfigError("kafka.side_topic_refresh must be at least 100ms (each look asks the broker for metadata)")
    if k.max_checkpoint_bytes < 64 * 1024:
        raise ConfigError("kafka.max_checkpoint_bytes must be >= 65536 (64 KiB)")
    if k.input_keys not in ("impression_id", "any"):
        raise ConfigError(f"kafka.input_keys: {k.input_keys!r} is not impression_id or any")
    if k.compression_type not in ("none", "gzip", "lz4", "snappy", "zstd"):
        raise ConfigError(f"kafka.compression_type: {k.compression_type!r} is not none, gzip, lz4, snappy or zstd")
    # A misspelt protocol must not fall back to an unencrypted, unauthenticated connection.
    if k.security_protocol not in SECURITY_PROTOCOLS:
        raise ConfigError(f"kafka.security_protocol: {k.security_protocol!r} is not one of {', '.join(SECURITY_PROTOCOLS)}")
    if k.sasl_mechanism is not None and k.sasl_mechanism not in SASL_MECHANISMS:
        raise ConfigError(f"kafka.sasl_mechanism: {k.sasl_mechanism!r} is not one of {', '.join(SASL_MECHANISMS)}")
    if k.partitions < 1 or k.replication_factor < 1:
        raise ConfigError("kafka.partitions and kafka.replication_factor must be >= 1")
    names = [e.name for e in cfg.experiments]
    if len(set(names)) != len(names):
        raise ConfigError("experiments: an experiment is declared twice")
    for e in cfg.experiments:
        for name in (e.name, *e.arms):  # first: the messages below print the name
            why = unfit(name)
            if why:
                raise ConfigError(f"experiments: {name!r} {why}: impressions naming it are rejected (a name is "
                                  "printed in logs, labels and summaries)")
        if not e.arms:
            raise ConfigError(f"experiments[{e.name}]: no arms declared")


def load_config(path: str | pathlib.Path | None = None, overrides: dict[str, Any] | None = None) -> Config:
    """Load a TOML, YAML or JSON config (by extension: ``.yaml``/``.yml``, ``.json``, else
    TOML), apply ``{"section.key": value}`` overrides. JSON is what ``stream-lis config``
    prints, so an effective config can be saved and loaded back as it is."""
    raw: dict[str, Any] = {}
    if path is not None:
        p = pathlib.Path(path)
        try:
            text = p.read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot read config {p}: {exc.strerror}") from exc
        suffix = p.suffix.lower()
        try:
            if suffix in (".yaml", ".yml"):
                raw = msgspec.yaml.decode(text) or {}
            elif suffix == ".json":
                raw = msgspec.json.decode(text)
            else:
                raw = msgspec.toml.decode(text)
        except msgspec.DecodeError as exc:
            hint = "" if suffix == ".toml" or suffix in (".yaml", ".yml", ".json") else \
                " (read as TOML: name a YAML file .yaml, a JSON one .json)"
            raise ConfigError(f"{p}: {exc}{hint}") from exc
        if not isinstance(raw, dict):
            raise ConfigError(f"{p}: a config is a table of sections, got {type(raw).__name__}")
    for dotted, value in (overrides or {}).items():
        node = raw
        *parents, leaf = dotted.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    try:
        return msgspec.convert(raw, Config)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"invalid config: {_explain(exc, raw)}") from exc


_UNKNOWN_FIELD = re.compile(r"Object contains unknown field `(?P<key>[^`]*)`(?: - at `(?P<path>[^`]*)`)?$")
_WRONG_TYPE = re.compile(r"Expected `(?P<want>[^`]+)`, got `(?P<got>[^`]+)`(?: - at `(?P<path>[^`]*)`)?$")
#: msgspec's type names in a config's words (TOML / JSON): what a key takes.
_KINDS = {"int": "a whole number", "float": "a number", "str": "a string", "bool": "true or false",
          "array": "a list", "object": "a table", "null": "nothing", "int | float": "a number",
          "str | null": "a string", "int | null": "a whole number", "float | null": "a number"}


def _explain(exc: msgspec.ValidationError, raw: Any = None) -> str:
    """msgspec's message, with the keys a misspelt key could have meant: its own names only
    the key it did not know and where (``unknown field 'horizn' - at '$.time'``). A value
    of the wrong type is named with the key and what it takes (msgspec: ``Expected `int`,
    got `float` - at `$.evaluation.window_size```).

    >>> try:
    ...     load_config(overrides={"time.horizn": "2h"})
    ... except ConfigError as e:
    ...     print(e)  # doctest: +ELLIPSIS
    invalid config: time has no key 'horizn' (did you mean 'horizon'?); its keys: attribution_window, ...
    """
    text = str(exc)
    w = _WRONG_TYPE.match(text)
    if w is not None and w["path"] and w["want"] in _KINDS:
        found, value = _value_at(raw, w["path"])
        shown = f"{value!r}"[:80] if found else w["got"]
        return f"{w['path'].removeprefix('$.')} takes {_KINDS[w['want']]}, got {shown}"
    m = _UNKNOWN_FIELD.match(text)
    struct = _struct_at(m["path"] or "$") if m else None
    if m is None or struct is None:
        return text
    key, keys = m["key"], [f.name for f in msgspec.structs.fields(struct)]
    where = "the config" if not m["path"] or m["path"] == "$" else m["path"].removeprefix("$.")
    if not key:
        return f"{where} has a key with an empty name; its keys: {', '.join(keys)}"
    close = difflib.get_close_matches(key, keys, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"{where} has no key {key!r}{hint}; its keys: {', '.join(keys)}"


def _value_at(raw: Any, path: str) -> tuple[bool, Any]:
    """The value a msgspec error path (``$.experiments[0].arms[1]``) points at, if found."""
    node = raw
    for name, index in re.findall(r"\.([^.\[]+)|\[(\d+)\]", path.removeprefix("$")):
        try:
            node = node[name] if name else node[int(index)]
        except (KeyError, IndexError, TypeError):
            return False, None
    return True, node


def _struct_at(path: str) -> type | None:
    """The config struct at a msgspec error path (``$.experiments[0]``), if it is one."""
    node: Any = Config
    for part in re.sub(r"\[\d+\]", "", path).split(".")[1:]:
        hints = typing.get_type_hints(node) if isinstance(node, type) and issubclass(node, msgspec.Struct) else {}
        node = hints.get(part)
        if typing.get_origin(node) is list:
            node = typing.get_args(node)[0]
    return node if isinstance(node, type) and issubclass(node, msgspec.Struct) else None


def to_dict(cfg: Config) -> dict[str, Any]:
    """The effective config as plain data (for ``--print-config`` and summaries)."""
    return msgspec.to_builtins(cfg)

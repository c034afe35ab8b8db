"""``stream-lis``: the command line.

``run`` is the main job (embedded runtime; the simulator when no ``--input`` is given),
``simulate`` writes a simulated event log. Every subcommand explains itself with ``--help``.
"""

from __future__ import annotations

import argparse
import errno
import json
import math
import os
import signal
import socket
import sys
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, Sequence, TextIO

import msgspec

from . import __version__
from .config import Config, ConfigError, LearnerConfig, load_config, to_dict
from .names import unfit
from .paths import first_problem, output

if TYPE_CHECKING:
    from .deadletter import DeadLetterWriter

DEFAULT_PORT = 9464

# Sizes of the simulated world that a laptop holds (measured: 10M users ~0.6 GB; 100k live
# items of 16 arms ~0.7 GB; 100M impressions ~30 GB of JSON, written as they are made).
MAX_IMPRESSIONS = 100_000_000
MAX_USERS = 10_000_000
MAX_ITEMS = 100_000
MAX_ARMS = 16
#: Names longer than this are rejected by `run` (limits.max_string_length's default).
MAX_NAME = 512


def _kv(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key or "" in key.split("."):
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE with a dotted KEY such as time.horizon, got {text!r}")
    try:
        value = json.loads(raw, parse_float=lambda number: _finite(key, number))
    except json.JSONDecodeError:
        value = raw
    # JSON reads 5e4 as a float: a whole number written so is meant as one (a float key takes
    # an int as it is; 1.0 stays a float).
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**63 and "e" in raw.lower():
        value = int(value)
    return key, value


def _finite(key: str, number: str) -> float:
    """A JSON number of a --set value, refused where JSON would read it as infinity (1e400):
    the config check would then name ``inf``, a value nobody wrote."""
    value = float(number)
    if math.isinf(value):
        raise argparse.ArgumentTypeError(f"{key}: {number} is beyond what a float holds (about ±1.8e308)")
    return value


def _whole(lowest: int, highest: int | None = None, noun: str = "whole number") -> Callable[[str], int]:
    """An argparse type: an integer from ``lowest`` (to ``highest``)."""

    def parse(text: str) -> int:
        try:
            n = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a {noun}: {text!r}") from None
        if n < lowest:
            raise argparse.ArgumentTypeError(f"must be >= {lowest}, got {n}")
        if highest is not None and n > highest:
            raise argparse.ArgumentTypeError(f"must be at most {highest:,}, got {n:,}")
        return n

    return parse


def _port(lowest: int) -> Callable[[str], int]:
    """A TCP port, or ``lowest`` (-1: none, 0: any free one) and up."""
    whole = _whole(lowest, None, "port number")

    def parse(text: str) -> int:
        n = whole(text)
        if n > 65535:
            raise argparse.ArgumentTypeError(f"port must be in [{lowest}, 65535], got {n}")
        return n

    return parse


def _count(lowest: int, highest: int | None = None) -> Callable[[str], int]:
    """A whole number, ``lowest`` or more (up to ``highest``: a size the machine can hold)."""
    return _whole(lowest, highest)


def _seconds(zero_ok: bool, what: str = "seconds", hint: str = "") -> Callable[[str], float]:
    """An argparse type: a finite number of ``what``, above 0 (or from 0 with ``zero_ok``);
    ``hint`` is added to the refusal."""

    def parse(text: str) -> float:
        try:
            x = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number of {what}: {text!r}") from None
        if not math.isfinite(x) or x < 0 or (x == 0 and not zero_ok):
            raise argparse.ArgumentTypeError(f"must be a finite number {'>=' if zero_ok else '>'} 0{hint}, got {text}")
        return x

    return parse


#: ``--rate``: 0, below 0 or not a number would mean full speed, silently.
_rate = _seconds(False, "records per second", " (leave --rate out for full speed)")


def _split(text: str) -> str:
    """``--split-at``, checked when parsed (``offline.split_from_text``); kept as given, which
    the result quotes."""
    from .offline import OfflineError, split_from_text

    try:
        split_from_text(text)
    except OfflineError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("--split-at").lstrip(": ")) from None
    return text


def _files_ok(command: str, inputs: Sequence[tuple[str, str | None]] = (),
              outputs: Sequence[tuple[str, str | None]] = ()) -> bool:
    """``paths.first_problem``, said in one line; False when there is one."""
    problem = first_problem(inputs, outputs)
    if problem is not None:
        print(f"stream-lis {command}: {problem}", file=sys.stderr)
    return problem is None


def _or_dash(v: object) -> str:
    """A figure as the rest of its line writes them (plain digits), or "-" where there is none
    yet (a group that has committed nothing)."""
    return "-" if v is None else str(v)


def _arms(text: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for part in text.split(","):
        name, _, fid = part.partition("=")
        name = name.strip()
        try:
            value = float(fid)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected NAME=FIDELITY[,...], got {text!r}") from None
        if not name:
            raise argparse.ArgumentTypeError(f"an arm needs a name, got {text!r}")
        if len(name) > MAX_NAME:
            raise argparse.ArgumentTypeError(f"an arm name longer than {MAX_NAME} characters is rejected by `run`")
        _refuse_unfit(name)
        if name in out:
            raise argparse.ArgumentTypeError(f"arm {name!r} named twice")
        if not 0 <= value <= 1:
            raise argparse.ArgumentTypeError(f"fidelity must be in [0, 1], got {fid.strip()} for {name!r}")
        out[name] = value
    if len(out) > MAX_ARMS:
        raise argparse.ArgumentTypeError(f"at most {MAX_ARMS} arms (each is a set of item embeddings in "
                                         f"memory), got {len(out)}")
    return out


def _name(text: str) -> str:
    """An experiment name `run` accepts: a stream named otherwise would be rejected whole."""
    if not text.strip():
        raise argparse.ArgumentTypeError("an experiment needs a name (`run` rejects every impression without one)")
    if len(text) > MAX_NAME:
        raise argparse.ArgumentTypeError(f"longer than {MAX_NAME} characters (`run` rejects such impressions)")
    _refuse_unfit(text)
    return text


def _refuse_unfit(name: str) -> None:
    why = unfit(name)
    if why:
        raise argparse.ArgumentTypeError(f"{name!r} {why}: `run` rejects such impressions")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="stream-lis",
        description="Streaming Leakage Impact Score (LIS), AUC Improvement Score (AIS) and alignment "
        "efficiency AIS/LIS per experiment arm, exported as Prometheus metrics.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Run `stream-lis run` for a first look: it evaluates the built-in simulator's stream (so does "
        "`stream-lis` without a command).",
    )
    p.add_argument("--version", action="version", version=f"stream-lis {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    r = sub.add_parser("run", help="evaluate a stream with the embedded runtime (the main job)",
                       description="Evaluate a stream with the embedded runtime. Without --input it evaluates the "
                       "built-in simulator's stream (a planted truth: future_item LIS > 0, noise LIS ~ 0, "
                       "AIS(treatment) > AIS(control)). Serves /metrics, prints a live per-arm table, and "
                       "at the end of the input closes every window and prints the final table.")
    r.add_argument("--input", "-i", metavar="FILE", help="JSON Lines events to evaluate ('-' for stdin; Ctrl-C or SIGTERM "
                   "ends the run with every result written); default: the simulator")
    r.add_argument("--config", "-c", metavar="FILE", help="TOML, YAML or JSON config (see README: Configuration)")
    r.add_argument("--set", dest="overrides", action="append", type=_kv, default=[], metavar="KEY=VALUE",
                   help="override one config key (repeatable; values are JSON, else strings), e.g. --set time.horizon=2h "
                        "--set evaluation.window_size=50000")
    r.add_argument("--duration", type=_seconds(False), metavar="SECONDS", help="stop after this many seconds of wall time")
    r.add_argument("--max-events", type=_count(1), metavar="N", help="stop after N input records")
    r.add_argument("--port", type=_port(-1), default=DEFAULT_PORT, help=f"port for /metrics and /healthz (default {DEFAULT_PORT}; 0 picks a free port; -1 disables)")
    r.add_argument("--host", default="0.0.0.0", help="address to serve metrics on (default 0.0.0.0)")
    r.add_argument("--summary-json", metavar="PATH", help="write the final figures as one JSON document: the run "
                   "(records read, seconds, why it stopped), each arm's AUCs, LIS and AIS with their intervals, "
                   "efficiency and counts, the counters (records accepted, rejected by reason, click joins, examples "
                   "shed by memory bound) and the effective config ('-': stdout, the table then goes to stderr)")
    r.add_argument("--dead-letters", metavar="PATH", default="dead-letters.jsonl",
                   help="append rejected records with their reason here (default dead-letters.jsonl; '-': stdout)")
    r.add_argument("--report-every", type=_seconds(True), default=5.0, metavar="SECONDS", help="live table interval (default 5; 0 disables)")
    r.add_argument("--impressions", type=_count(1, MAX_IMPRESSIONS), default=None,
                   help=f"simulator: impressions to generate (default 300000, at most {MAX_IMPRESSIONS:,}; not with --input)")
    r.add_argument("--seed", type=_count(0), default=None, help="simulator: random seed (default 7; not with --input)")
    r.add_argument("--quiet", "-q", action="store_true", help="no live tables: print only the final table (and the "
                   "one-line notices on stderr)")
    r.add_argument("--history", metavar="PATH", help="append one JSON line of per-arm figures per live-table interval "
                   "and one at the end (input of `stream-lis report`; '-': stdout)")

    s = sub.add_parser("simulate", help="write a simulated event log with a planted truth",
                       description="Write simulated impression and click events as JSON Lines, reproducibly from a seed. "
                       "Sizes are bounded by what a laptop holds (about 0.7 GB at the largest users, items or arms; "
                       "about 300 bytes of JSON per impression). Ctrl-C stops it with exit status 130 and removes "
                       "the output files it had begun (a cut-off event log would evaluate without a word of warning); "
                       "so does a write error (exit 1).")
    s.add_argument("--output", "-o", default="-", metavar="FILE", help="output file ('-' for stdout, the default)")
    s.add_argument("--impressions", type=_count(1, MAX_IMPRESSIONS), default=300_000,
                   help=f"impressions to generate (default 300000, at most {MAX_IMPRESSIONS:,})")
    s.add_argument("--seed", type=_count(0), default=7, help="random seed (default 7)")
    s.add_argument("--users", type=_count(1, MAX_USERS), default=5_000,
                   help=f"number of users (default 5000, at most {MAX_USERS:,})")
    s.add_argument("--items", type=_count(1, MAX_ITEMS), default=400,
                   help=f"items alive at any time (default 400, at most {MAX_ITEMS:,})")
    s.add_argument("--arms", type=_arms, default=None, metavar="NAME=FIDELITY,...",
                   help="arms and the fidelity of their MLLM embedding to item quality (default control=0.3,treatment=0.8; "
                   f"at most {MAX_ARMS} arms)")
    s.add_argument("--experiment", type=_name, default="lis_demo", help="experiment name (default lis_demo)")
    s.add_argument("--preferences", metavar="FILE", help="also write the perfect preference dataset (item -> quality) for the external probe")
    s.add_argument("--embeddings", metavar="FILE", help="write the arms' MLLM item embeddings to FILE as a side table "
                   "(embeddings.path) and leave them out of the events")

    w = sub.add_parser("worker", help="run a Kafka worker (join + evaluation stages, /metrics, /readyz)",
                       description="Consume impressions and clicks from Kafka, evaluate every arm this worker owns, and "
                       "serve /metrics, /healthz and /readyz. Start several with the same kafka.group_id to scale out; "
                       "state is checkpointed to a compacted topic and survives restarts. Creates missing topics.")
    _common(w)
    w.add_argument("--port", type=_port(0), default=DEFAULT_PORT, help=f"metrics port (default {DEFAULT_PORT}; 0 = any free port)")
    w.add_argument("--host", default="0.0.0.0", help="metrics address (default 0.0.0.0)")
    w.add_argument("--log-level", default="INFO", type=str.upper, choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                   help="DEBUG, INFO, WARNING or ERROR (default INFO)")
    w.add_argument("--stage", choices=["all", "join", "eval"], default="all",
                   help="which stages this process runs (default all: both, as threads sharing one core). join / eval: "
                   "one stage per process, so each gets a core and scales on its own; run at least one of each with "
                   "the same kafka.group_id")

    t = sub.add_parser("topics", help="create or describe the Kafka topics",
                       description="create: make the topics the runtime needs (impressions, clicks, preferences and embeddings (compacted), "
                       "the internal labelled topic, dead-letters, checkpoints (compacted)) with kafka.partitions and "
                       "kafka.replication_factor; on existing topics, max.message.bytes and segment.bytes are raised to what "
                       "the config needs (never lowered), nothing else is changed (a topic with fewer partitions than "
                       "kafka.partitions is named, with the command that adds them). describe: partitions, end offsets "
                       "and the workers' consumer lag (their groups are kafka.group_id-join and kafka.group_id-eval; "
                       "nothing committed yet: the lag from the beginning, where a worker starts). Exit status 1 when a "
                       "topic is missing or the input topics' partition counts differ.")
    t.add_argument("action", choices=["create", "describe"])
    _common(t)

    pr = sub.add_parser("produce", help="send the simulator's events to Kafka",
                        description="Send the simulator's events to the impressions and clicks topics, keyed by impression id.")
    _common(pr)
    pr.add_argument("--impressions", type=_count(1, MAX_IMPRESSIONS), default=300_000,
                    help=f"impressions to generate (default 300000, at most {MAX_IMPRESSIONS:,})")
    pr.add_argument("--seed", type=_count(0), default=7, help="random seed (default 7)")
    pr.add_argument("--rate", type=_rate, default=None, metavar="N", help="records per second (default: as fast as possible)")

    rp = sub.add_parser("replay", help="send a JSON Lines file of events to Kafka",
                        description="Send a JSON Lines file (or '-' for stdin) to the impressions and clicks topics. "
                        "Unreadable lines are sent too, unkeyed, so the worker dead-letters them with a reason.")
    rp.add_argument("file", help="JSON Lines events, '-' for stdin")
    _common(rp)
    rp.add_argument("--rate", type=_rate, default=None, metavar="N", help="records per second (default: as fast as possible)")

    pf = sub.add_parser("preferences", help="send a preference dataset to the compacted preferences topic",
                        description="Send a preference dataset (JSON Lines of {\"item_id\": ..., \"vector\": [...]} or "
                        "{\"item_id\": ..., \"items\": [...]}) to kafka.topics.preferences, keyed by item id, for workers "
                        "with probes.external.from_topic = true: they read the whole topic at start and every update "
                        "as it comes. Compaction keeps each item's latest record. Lines the external probe would reject "
                        "are listed with their reason and not sent (a compacted topic needs the item id as key); the "
                        "exit status is then 1.")
    pf.add_argument("file", nargs="?", help="JSON Lines preference records, '-' for stdin (optional with --delete)")
    pf.add_argument("--delete", action="append", default=[], metavar="ITEM",
                    help="also send a tombstone that deletes this item (repeatable)")
    _common(pf)

    em = sub.add_parser("embeddings", help="send the arms' item embeddings to the compacted embeddings topic",
                        description="Send a table of the arms' MLLM item representations (JSON Lines of {\"arm\": ..., "
                        "\"item_id\": ..., \"vector\": [...]} and optionally \"experiment\") to kafka.topics.embeddings, "
                        "for workers with embeddings.from_topic = true: impressions without an inline embedding get "
                        "their arm's vector for their item from it. Each record is keyed by [experiment, arm, item_id] "
                        "as compact JSON (experiment \"\" when the record holds for every experiment), so compaction "
                        "keeps the latest vector of each; a null value with that key deletes it (--delete sends one). Lines "
                        "the table would reject are listed with their reason and not sent; the exit status is then 1.")
    em.add_argument("file", nargs="?", help="JSON Lines embedding records, '-' for stdin (optional with --delete)")
    em.add_argument("--delete", nargs=2, action="append", default=[], metavar=("ARM", "ITEM"),
                    help="also send a tombstone that deletes this arm's vector for this item (repeatable)")
    em.add_argument("--experiment", default=None, metavar="NAME",
                    help="the experiment the --delete records belong to (default: none, the arm-wide records)")
    _common(em)

    o = sub.add_parser("offline", help="compute LIS the paper's way: batch models on a time split of an event log",
                       description="Offline LIS on a JSON Lines event log, the source paper's way: the stream's labelled "
                       "examples and feature sets (same join, look-ahead horizon and probes), batch models (clean, "
                       "leaky:<probe>, mllm; the configured learner) trained on the examples before the split time for "
                       "several shuffled passes, AUCs, LIS per probe and AIS with DeLong intervals at evaluation.confidence_level "
                       "(default 0.95) on the examples from the split on. A data problem (no labelled example, no arm "
                       "with both training and test data) exits 1, Ctrl-C exits 130. See stream_lis/offline.py for how "
                       "these numbers relate to the streaming ones.")
    o.add_argument("file", help="JSON Lines events ('-' for stdin)")
    o.add_argument("--split-at", required=True, metavar="T", type=_split,
                   help="split time: epoch milliseconds, an RFC 3339 time (2026-01-01T02:00:00Z; no offset = UTC), or a "
                   "fraction in (0, 1) meaning that quantile of the labelled impressions' event times (0.7: train on the "
                   "first 70%%)")
    o.add_argument("--config", "-c", metavar="FILE", help="TOML, YAML or JSON config (see README: Configuration)")
    o.add_argument("--set", dest="overrides", action="append", type=_kv, default=[], metavar="KEY=VALUE",
                   help="override one config key (repeatable; values are JSON, else strings), e.g. --set time.horizon=2h")
    o.add_argument("--passes", type=_count(1, 1000), default=5, metavar="N",
                   help="training passes over the pre-split examples (default 5, at most 1000)")
    o.add_argument("--seed", type=_count(0), default=7, help="seed of the shuffled training order (default 7)")
    o.add_argument("--dead-letters", metavar="PATH", default="dead-letters.jsonl",
                   help="append rejected records with their reason here (default dead-letters.jsonl; '-': stdout)")
    o.add_argument("--json", metavar="PATH", help="write the figures per experiment and arm as JSON ('-': stdout, "
                   "the table then goes to stderr)")
    o.add_argument("--compare-stream", action="store_true",
                   help="also run the streaming learners in the same pass and report their figures on the same test "
                   "examples and on their final window (as `run` would end)")

    c = sub.add_parser("config", help="print the effective configuration as JSON",
                       description="Print the effective configuration (defaults, file and --set overrides) as JSON.")
    c.add_argument("--config", "-c", metavar="FILE", help="TOML, YAML or JSON config (see README: Configuration)")
    c.add_argument("--set", dest="overrides", action="append", type=_kv, default=[], metavar="KEY=VALUE",
                   help="override one key, e.g. --set learner.batch_size=1024 (repeatable; values are JSON, else strings)")

    from .report.command import add_parser as add_report_parser

    add_report_parser(sub)
    return p


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", "-c", metavar="FILE", help="TOML, YAML or JSON config")
    p.add_argument("--set", dest="overrides", action="append", type=_kv, default=[], metavar="KEY=VALUE",
                   help="override one config key (repeatable; values are JSON, else strings), e.g. "
                        "--set kafka.bootstrap_servers=broker:9092")
    p.add_argument("--bootstrap", metavar="HOST:PORT", help="Kafka bootstrap servers (overrides kafka.bootstrap_servers "
                   "and $STREAM_LIS_BOOTSTRAP)")


def _load(args: argparse.Namespace) -> Config:
    bootstrap = getattr(args, "bootstrap", None)
    if bootstrap is not None:
        if not bootstrap.strip():  # not "use the default": an empty value from a script's unset variable
            raise ConfigError("--bootstrap is empty: give HOST:PORT, or leave it out for kafka.bootstrap_servers")
        os.environ["STREAM_LIS_BOOTSTRAP"] = bootstrap.strip()
    return load_config(args.config, dict(args.overrides))


def _shown(host: str) -> str:
    """The address to print for a server bound to ``host`` (every interface: this machine's)."""
    if host in ("", "0.0.0.0", "::"):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


def _port_taken(command: str, args: argparse.Namespace, exc: OSError, choices: str) -> int:
    """Say why the metrics server cannot listen, in one line, naming the option to change
    (the port when it is taken or privileged, else the address); the exit status."""
    if isinstance(exc, socket.gaierror):
        why, fix = f"no such address ({exc.strerror})", "--host (an IP address or a name this machine resolves)"
    else:
        why = os.strerror(exc.errno) if exc.errno else str(exc)
        if exc.errno in (errno.EADDRINUSE, errno.EACCES):
            fix = f"another with --port ({choices})"
        else:
            fix = "--host (an address of this machine; 0.0.0.0 = every interface)"
    print(f"stream-lis {command}: cannot serve metrics on {args.host}:{args.port}: {why}; choose {fix}",
          file=sys.stderr)
    return 2


def check_learner(cfg: LearnerConfig) -> None:
    """Build the configured learner once (a ``ConfigError`` for bad ``learner.params``), so a
    command that evaluates fails at start, not when its first arm appears."""
    from .learners import check_learner as check

    check(cfg)


def cmd_config(args: argparse.Namespace) -> int:
    cfg = _load(args)
    check_learner(cfg.learner)
    print(json.dumps(to_dict(cfg), indent=2))
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    from .simulator import Simulator, SimulatorConfig

    if not _files_ok("simulate", outputs=[("--output", args.output), ("--preferences", args.preferences),
                                          ("--embeddings", args.embeddings)]):
        return 2
    kw: dict[str, Any] = dict(impressions=args.impressions, seed=args.seed, users=args.users,
                              live_items=args.items, experiment=args.experiment)
    if args.arms:
        kw["arms"] = args.arms
    sim = Simulator(SimulatorConfig(**kw, side_embeddings=bool(args.embeddings)))
    enc = msgspec.json.Encoder().encode
    begun: list[str] = []
    n = 0
    try:
        with output(args.output) as out:
            begun.append(args.output)
            for ev in sim.events():
                out.write(enc(ev) + b"\n")
                n += 1
        for path, records in ((args.preferences, sim.preferences), (args.embeddings, sim.embedding_records)):
            if path:
                with output(path) as fh:
                    begun.append(path)
                    for rec in records():
                        fh.write(enc(rec) + b"\n")
    except (KeyboardInterrupt, OSError) as exc:
        if isinstance(exc, BrokenPipeError):
            raise
        # A cut-off event log would evaluate without a word: none is left behind.
        for path in begun:
            _remove_partial(path)
        raise
    print(f"wrote {n:,} events" + (f" to {args.output}" if args.output != "-" else ""), file=sys.stderr)
    return 0


def _remove_partial(path: str) -> None:
    """Remove an output file cut off by an interruption or a write error (a regular file only:
    never stdout, a device or a pipe)."""
    try:
        if path != "-" and os.path.isfile(path):
            os.remove(path)
            print(f"stream-lis: removed the partial {path}", file=sys.stderr)
    except OSError:
        pass


def cmd_run(args: argparse.Namespace) -> int:
    from .deadletter import DeadLetterWriter
    from .engine import Engine
    from .probes import ExternalProbe, build_probes
    from .runtime.embedded import EmbeddedRuntime
    from .runtime.sources import numbered_file_records, simulator_records
    from .simulator import SimulatorConfig
    from .summary import summarize
    from .table import render, why_no_arm

    cfg = _load(args)
    check_learner(cfg.learner)
    if args.input:
        sim_only = [f"--{k}" for k in ("impressions", "seed") if getattr(args, k) is not None]
        if sim_only:
            print(f"stream-lis run: {' and '.join(sim_only)} {'set' if len(sim_only) > 1 else 'sets'} the built-in "
                  f"simulator's stream, which --input replaces; drop {'them' if len(sim_only) > 1 else 'it'}", file=sys.stderr)
            return 2
    if not _files_ok("run", inputs=[("--input", args.input)],
                     outputs=[("--summary-json", args.summary_json), ("--dead-letters", args.dead_letters),
                              ("--history", args.history)]):
        return 2
    probes = build_probes(cfg.probes)
    truth = None
    if not args.input and "external" not in cfg.probes.enabled:
        # On the simulator, the external probe reads the planted item quality: a perfect
        # preference dataset whose LIS bounds what any MLLM aligned on it can bring.
        truth = ExternalProbe()
        probes.append(truth)
    dead = DeadLetterWriter.open(args.dead_letters)
    engine = Engine(cfg, on_invalid=dead.write, probes=probes)
    port = None if args.port < 0 else args.port
    try:
        rt = EmbeddedRuntime(cfg, engine, port=port, host=args.host)
    except OSError as exc:
        return _port_taken("run", args, exc, "0 = any free port, -1 = none")
    if args.input:
        (records, where), total, source = numbered_file_records(args.input, cfg.limits.max_event_bytes), None, args.input
        what = "stdin" if args.input == "-" else args.input
    else:
        sim = SimulatorConfig(impressions=300_000 if args.impressions is None else args.impressions,
                              seed=7 if args.seed is None else args.seed)
        records, source = simulator_records(sim, truth.set_vector if truth else None), "simulator"
        where = None
        total = int(sim.impressions * 1.07)  # impressions plus ~7% clicks and noise
        what = f"the built-in simulator ({sim.impressions:,} impressions, seed {sim.seed})"
    err = sys.stderr
    print(f"stream-lis {__version__}: evaluating {what}", file=err)
    if rt.server is not None:
        print(f"metrics: http://{_shown(args.host)}:{rt.server.port}/metrics   health: /healthz", file=err)
    print(f"dead letters: {'stdout' if args.dead_letters == '-' else args.dead_letters}", file=err)
    if truth is not None:
        print("probe 'external' = the simulator's planted item quality (a perfect preference dataset)", file=err)
    print("", file=err)
    history = None
    if args.history:
        from .report.history import HistoryWriter

        try:
            history = HistoryWriter(args.history, cfg.evaluation.confidence_level)
        except OSError as exc:
            print(f"stream-lis run: cannot write --history {args.history}: {exc.strerror or exc}", file=err)
            dead.close()
            rt.close()
            return 2
    every = None if args.report_every <= 0 or (args.quiet and history is None) else args.report_every
    live = open(os.devnull, "w") if args.quiet and every is not None else err  # --quiet --history: no table
    try:
        with _StopOnSignal() as stop:
            res = rt.run(records, max_records=args.max_events, duration_s=args.duration, report_every_s=every,
                         out=live, total_hint=total, source=source, live=args.input == "-", where=where,
                         on_report=history.write if history is not None else None, stop=stop)
        if history is not None:
            history.write(res.snapshot, final=True, stopped_by=res.stopped_by)
    except KeyboardInterrupt:
        print("interrupted", file=err)
        return 130
    finally:
        dead.close()
        if history is not None:
            history.close()
        if live is not err:
            live.close()
    rt.close()
    # The result files first: whether anyone reads the table (stdout closed by `| head`) must
    # not decide whether they are written.
    if args.summary_json:
        run = {"records": res.records, "seconds": round(res.seconds, 3), "records_per_second": round(res.rate, 1),
               "stopped_by": res.stopped_by, "source": source, "finished_unix": time.time()}
        doc = summarize(res.snapshot, list(engine.ended.values()), run, to_dict(cfg))
        with output(args.summary_json) as fh:
            fh.write(msgspec.json.format(msgspec.json.encode(doc), indent=2) + b"\n")
    # A result on stdout ('-') keeps it clean: the table goes to stderr.
    out = err if "-" in (args.summary_json, args.history, args.dead_letters) else sys.stdout
    print(f"final ({res.stopped_by}: {_n(res.records, 'record')} read in {res.seconds:.1f} s, {res.rate:,.0f} records/s)",
          file=out)
    print(render(res.snapshot, res.records, res.rate, level=cfg.evaluation.confidence_level,
                 ended=list(engine.ended.values())), file=out)
    _say_dead_letters(dead, args.dead_letters, out)
    if args.summary_json and args.summary_json != "-":
        print(f"summary: {args.summary_json}", file=out)
    accepted = res.snapshot.counters.records
    if res.records and not accepted:
        print(f"stream-lis run: every one of the {res.records:,} input records was rejected (reasons in the table and "
              f"in {args.dead_letters}): a wrong file, or the `experiments` config not naming the input's arms?",
              file=err)
        return 1
    if not res.records:
        nothing: str | None = "the input has no record"
    else:
        nothing = None if res.snapshot.arms or engine.ended else why_no_arm(res.snapshot.counters, res.records)
    if nothing is not None:  # not one impression to evaluate: a failure of the data, said as such
        print(f"stream-lis run: nothing to evaluate: {nothing}", file=err)
        return 1
    return 0


class _StopOnSignal:
    """SIGINT (Ctrl-C) and SIGTERM during a run end it like ``--duration``: after the batch in
    hand, with every window flushed and every result file written (a run on live stdin ends
    this way). A second Ctrl-C interrupts at once, writing nothing more. Called, it gives the
    signal's name once one came (what ``EmbeddedRuntime.run`` asks between batches)."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.why: str | None = None
        self._before: dict[int, Any] = {}

    def __enter__(self) -> "_StopOnSignal":
        if threading.current_thread() is threading.main_thread():  # signal handlers: main thread only
            self._before = {sig: signal.signal(sig, self._handle) for sig in self.SIGNALS}
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._before.items():
            signal.signal(sig, handler)

    def _handle(self, signum: int, _frame: Any) -> None:
        if self.why is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.why = signal.Signals(signum).name
        try:
            print(f"\n{self.why}: stopping after this batch, then writing the results (Ctrl-C again to abort)",
                  file=sys.stderr, flush=True)
        except RuntimeError:  # the signal came in the middle of a write to stderr (reentrant call)
            pass

    def __call__(self) -> str | None:
        return self.why


def _say_dead_letters(dead: "DeadLetterWriter", path: str, out: TextIO) -> None:
    """The line after a result's table naming the dead-letter file (none on stdout)."""
    if dead.written and path != "-":
        print(f"\n{_n(dead.written, 'rejected record')} written to {path}", file=out)


def cmd_offline(args: argparse.Namespace) -> int:
    from .deadletter import DeadLetterWriter
    from .offline import OfflineDataError, OfflineError, render_offline, run_offline_file, to_json

    cfg = _load(args)
    check_learner(cfg.learner)
    if not _files_ok("offline", inputs=[("", args.file)],
                     outputs=[("--json", args.json), ("--dead-letters", args.dead_letters)]):
        return 2
    if args.json == "-" and args.dead_letters == "-":
        print("stream-lis offline: --json and --dead-letters cannot both be stdout", file=sys.stderr)
        return 2
    dead = DeadLetterWriter.open(args.dead_letters)
    try:
        res = run_offline_file(args.file, cfg, args.split_at, passes=args.passes, seed=args.seed,
                               stream=args.compare_stream, on_invalid=dead.write)
    except OfflineError as exc:
        print(f"stream-lis offline: {exc}", file=sys.stderr)
        return 1 if isinstance(exc, OfflineDataError) else 2  # nothing to evaluate / a split that cannot be
    finally:
        dead.close()
    if args.json:  # before the table: a closed stdout must not cost the file
        doc = to_json(res, source=args.file)
        with output(args.json) as fh:
            fh.write(msgspec.json.format(msgspec.json.encode(doc), indent=2) + b"\n")
    out = sys.stderr if "-" in (args.json, args.dead_letters) else sys.stdout  # a result on stdout: the table to stderr
    print(render_offline(res), file=out)
    _say_dead_letters(dead, args.dead_letters, out)
    if args.json and args.json != "-":
        print(f"\njson: {args.json}", file=out)
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    import logging

    from prometheus_client import CollectorRegistry

    from .exporter import MetricsServer
    from .runtime.kafka.worker import Worker
    from .runtime.log_repeats import limit_repeats

    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("kafka").setLevel(logging.WARNING)
    logging.getLogger("kafka.net").setLevel(logging.ERROR)  # "task blocked the event loop" notes while we compute
    # A connection error once a minute with a count, not at every reconnect of an outage.
    limit_repeats("kafka", 60.0)
    cfg = _load(args)
    check_learner(cfg.learner)
    # Up before the broker is reached: probes find the worker alive while it waits for the
    # broker (not ready), and a port already taken is said before any of that.
    try:
        server = MetricsServer(CollectorRegistry(auto_describe=False), args.port, args.host, ready=lambda: False,
                               healthy=lambda: (True, "starting"), not_ready="starting")
    except OSError as exc:
        return _port_taken("worker", args, exc, "0 = any free port")
    print(f"metrics: http://{_shown(args.host)}:{server.port}/metrics  ready: /readyz", file=sys.stderr, flush=True)
    stages = ("join", "eval") if args.stage == "all" else (args.stage,)

    def stop_while_starting(signum: int, _frame: Any) -> None:
        # Until the stages run (the broker reached, topics made) there is no state to save: a
        # stop now, e.g. a pod deleted while its broker is unreachable, ends the process at once
        # and says so, rather than waiting out kafka.startup_timeout.
        logging.getLogger("stream_lis.worker").warning(
            "%s while starting (connecting to Kafka, nothing to checkpoint yet): exiting", signal.Signals(signum).name)
        logging.shutdown()
        os._exit(0)

    # run_forever installs the running worker's handlers; a start that fails puts back the caller's.
    before = {sig: signal.signal(sig, stop_while_starting) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        worker = Worker(cfg, stages=stages, server=server)
    except BaseException:
        for sig, handler in before.items():
            signal.signal(sig, handler)
        server.close()
        raise
    return worker.run_forever()


def cmd_topics(args: argparse.Namespace) -> int:
    from .runtime.kafka.settings import client_kwargs
    from .runtime.kafka.topics import copartition_problem, create_topics, describe_topics

    cfg = _load(args)
    kw = client_kwargs(cfg.kafka)
    if args.action == "create":
        for name, what in create_topics(cfg, kw):
            print(f"{name}: {what}")
        problem = copartition_problem(cfg, kw)
        if problem is not None:
            print(f"stream-lis topics: {problem}", file=sys.stderr)
            return 1
        return 0
    problem = copartition_problem(cfg, kw)
    if problem is not None:
        print(f"stream-lis topics: {problem}", file=sys.stderr)
    missing = 0
    for row in describe_topics(cfg, kw):
        if not row["exists"]:
            print(f"{row['topic']}: missing (run `stream-lis topics create`)")
            missing += 1
            continue
        lag = (f"  group {row['group']} committed {_or_dash(row['committed'])} lag {row['lag']}"
               + (" (nothing committed: from the beginning)" if row["committed"] is None else "")
               if "group" in row else "")
        print(f"{row['topic']}[{row['partition']}] end {row['end_offset']}{lag}")
    return 1 if missing or problem is not None else 0


def cmd_produce(args: argparse.Namespace) -> int:
    from .runtime.kafka.produce import produce
    from .runtime.kafka.settings import client_kwargs
    from .runtime.sources import numbered_file_records, simulator_records
    from .simulator import SimulatorConfig

    cfg = _load(args)
    kw = client_kwargs(cfg.kafka)
    where = None
    if args.command == "produce":
        records, total = simulator_records(SimulatorConfig(impressions=args.impressions, seed=args.seed)), int(args.impressions * 1.07)
    else:
        if not _files_ok("replay", inputs=[("", args.file)]):
            return 2
        (records, where), total = numbered_file_records(args.file, 1 << 30), None
    _ensure_topics(cfg, kw, [cfg.kafka.topics.impressions, cfg.kafka.topics.clicks])
    res = produce(records, cfg, kw, rate=args.rate, total=total, where=where)
    return 0 if res.failed == 0 and res.acked == res.sent else 1


def _ensure_topics(cfg: Config, kw: dict[str, Any], names: list[str]) -> None:
    """The topics a command writes to, made as ``topics create`` makes them when missing."""
    from .runtime.kafka.topics import ensure_topics

    created = ensure_topics(cfg, kw, names)
    if created:
        print(f"created topics {', '.join(created)} as `stream-lis topics create` does (kafka.partitions "
              f"{cfg.kafka.partitions}), not with the broker's defaults", file=sys.stderr)


def cmd_side_table(args: argparse.Namespace) -> int:
    """``preferences`` / ``embeddings``: a side table's file and deletions into its compacted topic."""
    from .runtime.kafka import produce

    cfg = _load(args)
    if args.file is None and not args.delete:
        what = "--delete ITEM" if args.command == "preferences" else "--delete ARM ITEM"
        print(f"stream-lis {args.command}: give a FILE of records, {what}, or both", file=sys.stderr)
        return 2
    lines = _read_lines(args.file, args.command)
    if lines is None:
        return 2
    if args.command == "preferences":
        from .probes.external import REJECT_DETAILS

        records, bad = produce.preference_records(lines, args.delete)
        topic, noun = cfg.kafka.topics.preferences, "record"
    else:
        from .embedding_table import REJECT_DETAILS

        records, bad = produce.embedding_records(lines, cfg.limits.max_embedding_dims,
                                                 [(args.experiment, arm, item) for arm, item in args.delete])
        topic, noun = cfg.kafka.topics.embeddings, "vector"
    n = len(args.delete)
    return _publish(cfg, topic, records, bad, args.file, args.command,
                    f"{_n(len(records) - n, noun)}, {_n(n, 'deletion')}", REJECT_DETAILS)


def _read_lines(path: str | None, command: str) -> list[bytes] | None:
    """The lines of a file ('-': stdin; None: no file); None (reported) when it is missing."""
    if path is None:
        return []
    from .jsonl_table import BOM

    if path == "-":
        data = sys.stdin.buffer.read()
    else:
        if not _files_ok(command, inputs=[("", path)]):
            return None
        with open(path, "rb") as fh:
            data = fh.read()
    return data.removeprefix(BOM).splitlines()


def _n(k: int, noun: str) -> str:
    return f"{k:,} {noun}" + ("" if k == 1 else "s")


def _publish(cfg: Config, topic: str, records: list[tuple[bytes, bytes | None]], bad: list[tuple[int, str]],
             path: str | None, command: str, what: str, details: dict[str, str]) -> int:
    """Send (key, value) records to a compacted side topic; rejected lines are listed, not sent."""
    from .runtime.kafka.produce import produce
    from .runtime.kafka.settings import client_kwargs

    for n, reason in bad[:20]:
        print(f"stream-lis {command}: {path}:{n}: {reason} ({details.get(reason, '')}), not sent", file=sys.stderr)
    if len(bad) > 20:
        print(f"stream-lis {command}: ... {_n(len(bad) - 20, 'more line')} rejected", file=sys.stderr)
    print(f"{topic}: {what}" + (f"; {_n(len(bad), 'line')} rejected" if bad else ""), file=sys.stderr)
    kw = client_kwargs(cfg.kafka)
    # (auto-created by the broker, a side topic would not even be compacted)
    _ensure_topics(cfg, kw, [topic])
    res = produce(records, cfg, kw, total=len(records), to=lambda kv: (topic, kv[0], kv[1]))
    return 0 if not bad and res.failed == 0 and res.acked == res.sent else 1


def _cmd_report(args: argparse.Namespace) -> int:
    from .report.command import run

    return run(args)


class _Terminated(KeyboardInterrupt):
    """SIGTERM (what `timeout`, CI runners and container stops send), raised where Ctrl-C would
    be: the same clean-up (``simulate`` removes the event log it had begun), exit 143."""


def _terminate(signum: int, frame: Any) -> None:
    raise _Terminated()


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        args = parser.parse_args(["run", *(argv or [])])
    term_before = None
    if args.command not in ("run", "worker") and threading.current_thread() is threading.main_thread():
        term_before = signal.signal(signal.SIGTERM, _terminate)  # run and worker stop cleanly on their own
    try:
        commands = {"run": cmd_run, "simulate": cmd_simulate, "config": cmd_config, "worker": cmd_worker,
                    "topics": cmd_topics, "produce": cmd_produce, "replay": cmd_produce, "report": _cmd_report,
                    "preferences": cmd_side_table, "embeddings": cmd_side_table,
                    "offline": cmd_offline}
        return commands[args.command](args)
    except ConfigError as exc:
        print(f"stream-lis: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:  # Ctrl-C: said in one line (`run` and `report --scrape` stop cleanly first)
        if isinstance(exc, _Terminated):
            print(f"stream-lis {args.command}: terminated", file=sys.stderr)
            return 128 + signal.SIGTERM
        print(f"\nstream-lis {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except OSError as exc:
        if exc.filename is None:  # not a file's: a socket's, the broker's client's
            raise
        # A file that cannot be read, or written after the checks at start (a full disk).
        print(f"stream-lis {args.command}: {exc.filename}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        from kafka.errors import KafkaError

        if isinstance(exc, KafkaError):
            print(f"stream-lis: Kafka: {exc} (is the broker at the bootstrap address reachable?)", file=sys.stderr)
            return 1
        raise
    finally:
        if term_before is not None:
            signal.signal(signal.SIGTERM, term_before)


if __name__ == "__main__":
    sys.exit(main())

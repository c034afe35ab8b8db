"""A user's mistake on the command line is said in one line, before any work, never as a
traceback after it: files that cannot be read or written, counts out of range, learner
parameters of the wrong type, a config in another format."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

CLI = [sys.executable, "-m", "stream_lis"]


def _run(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=120, cwd=cwd)


@pytest.fixture
def events(tmp_path):
    path = tmp_path / "ev.jsonl"
    assert _run("simulate", "--impressions", "300", "-o", str(path)).returncode == 0
    return path


def _said(proc: subprocess.CompletedProcess, *words: str) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    # argparse names the option ("argument --arms: ..."): a message naming it again doubles it
    assert not re.search(r"(--[\w-]+): \1:", proc.stderr), proc.stderr
    for w in words:
        assert w in proc.stderr, (w, proc.stderr)


@pytest.mark.parametrize("args, words", [
    # a results file in a missing directory: said at start, not after the run (its figures lost)
    (["run", "--input", "{ev}", "--summary-json", "{tmp}/missing/s.json"], ["cannot write --summary-json", "no such directory"]),
    (["run", "--input", "{ev}", "--dead-letters", "{tmp}/missing/d.jsonl"], ["cannot write --dead-letters"]),
    (["run", "--input", "{ev}", "--history", "{tmp}"], ["cannot write --history", "is a directory"]),
    (["run", "--input", "{tmp}"], ["cannot read --input", "is a directory"]),
    (["run", "--input", "{tmp}/nope.jsonl"], ["cannot read --input", "no such file"]),
    (["simulate", "-o", "{tmp}/missing/x.jsonl"], ["cannot write --output"]),
    (["offline", "{ev}", "--split-at", "0.5", "--json", "{tmp}/missing/o.json"], ["cannot write --json"]),
    (["offline", "{tmp}", "--split-at", "0.5"], ["cannot read", "is a directory"]),
    (["report", "{ev}", "-o", "{tmp}/missing/r.html"], ["cannot write --output"]),
    # an output that is also an input, or another output: it would be overwritten, silently
    (["run", "--input", "{ev}", "--summary-json", "{ev}"], ["cannot write --summary-json", "it is --input"]),
    (["run", "--input", "{ev}", "--dead-letters", "{ev}"], ["cannot write --dead-letters", "it is --input"]),
    (["run", "--input", "{ev}", "--history", "{tmp}/h.json", "--summary-json", "{tmp}/./h.json"],
     ["cannot write --history", "it is --summary-json"]),
    (["simulate", "-o", "{tmp}/x.jsonl", "--preferences", "{tmp}/x.jsonl"], ["cannot write --preferences", "it is --output"]),
    (["offline", "{ev}", "--split-at", "0.5", "--json", "{ev}"], ["cannot write --json", "it is an input"]),
    (["report", "{ev}", "-o", "{ev}"], ["cannot write --output", "it is an input"]),
    # counts and durations
    (["run", "--max-events", "-1"], ["--max-events", "must be >= 1"]),
    (["run", "--seed", "-1"], ["--seed", "must be >= 0"]),
    (["simulate", "--seed", "-1"], ["--seed", "must be >= 0"]),
    (["offline", "{ev}", "--split-at", "0.5", "--seed", "-1"], ["--seed", "must be >= 0"]),
    (["run", "--duration", "-1"], ["--duration", "must be a finite number > 0"]),
    (["run", "--duration", "nan"], ["--duration", "must be a finite number > 0"]),
    (["run", "--report-every", "inf"], ["--report-every", "must be a finite number >= 0"]),
    # a rate of 0, below 0 or not a number would mean full speed, silently
    (["produce", "--rate", "0"], ["--rate", "must be a finite number > 0"]),
    (["produce", "--rate", "-5"], ["--rate", "must be a finite number > 0"]),
    (["replay", "{ev}", "--rate", "nan"], ["--rate", "must be a finite number > 0"]),
    # an empty --bootstrap (a script's unset variable) is not the default address
    (["worker", "--bootstrap", ""], ["--bootstrap is empty"]),
    (["topics", "create", "--bootstrap", " "], ["--bootstrap is empty"]),
    # an address the Kafka client would only parse when connecting, with a traceback
    (["topics", "describe", "--bootstrap", "localhost:notaport"], ["'localhost:notaport' is not HOST:PORT"]),
    (["worker", "--bootstrap", "127.0.0.1:99999"], ["'127.0.0.1:99999' is not HOST:PORT with a port in 1..65535"]),
    (["produce", "--bootstrap", "b1:9092,,b2:9092"], ["must not be empty or have an empty entry"]),
    (["topics", "create", "--set", "kafka.bootstrap_servers=localhost:x"], ["kafka.bootstrap_servers: 'localhost:x'"]),
    # sizes that pass a lower bound and then take the machine's memory, or overflow
    (["run", "--input", "{ev}", "--set", "evaluation.window_size=99999999999"], ["window_size must be in [100, 10,000,000]"]),
    (["run", "--input", "{ev}", "--set", "probes.co_click_top_k=1000000000"], ["co_click_top_k at most 1000"]),
    (["run", "--input", "{ev}", "--set", "probes.noise_dims=100000000"], ["noise_dims must be at most 1024"]),
    (["run", "--input", "{ev}", "--set", "runtime.gc_threshold=1000000000000"], ["gc_threshold must be in"]),
    (["run", "--input", "{ev}", "--set", "limits.max_event_bytes=-1"], ["max_event_bytes must be >= 256"]),
    (["run", "--input", "{ev}", "--set", "limits.max_string_length=0"], ["max_string_length and"]),
    (["run", "--input", "{ev}", "--set", "limits.max_embedding_dims=-1"], ["max_embedding_dims must be >= 1"]),
    # JSON reads 1e400 as infinity: said as written, not as "inf"
    (["run", "--input", "{ev}", "--set", 'learner.params={"alpha": 1e400}'], ["learner.params: 1e400 is beyond what a float"]),
    (["report", "--scrape", "127.0.0.1:1", "--every", "nan"], ["--every a finite number"]),
    (["report", "--scrape", "127.0.0.1:1", "--timeout", "inf"], ["--timeout a finite number"]),
    (["report", "--scrape", "http://[::1", "--samples", "1"], ["--scrape: not a URL"]),
    (["report", "{tmp}/latin1.json"], ["not UTF-8 text"]),
    (["run", "--impressions", "0"], ["--impressions", "must be >= 1"]),
    # simulator options beside --input would be ignored without a word
    (["run", "--input", "{ev}", "--impressions", "1000"], ["--impressions sets the built-in simulator", "--input"]),
    (["run", "--input", "{ev}", "--seed", "3", "--impressions", "9"], ["--impressions and --seed set"]),
    # arms that `run` would reject or merge
    (["simulate", "--arms", "control=0.3,=0.8"], ["--arms: an arm needs a name"]),
    (["simulate", "--arms", "a=0.3,a=0.8"], ["--arms: arm 'a' named twice"]),
    (["simulate", "--arms", "a=1.5"], ["fidelity must be in [0, 1], got 1.5 for 'a'"]),
    # sizes a laptop cannot hold (10M users took 0.6 GB; 2e9 users, 7 GB and more)
    (["simulate", "--users", "2000000000"], ["--users", "must be at most 10,000,000"]),
    (["simulate", "--items", "100001"], ["--items", "must be at most 100,000"]),
    (["simulate", "--impressions", "100000001"], ["--impressions", "must be at most 100,000,000"]),
    (["run", "--impressions", "100000001"], ["--impressions", "must be at most 100,000,000"]),
    (["simulate", "--arms", ",".join(f"a{k}=0.5" for k in range(17))], ["--arms: at most 16 arms"]),
    (["offline", "{ev}", "--split-at", "0.5", "--passes", "1001"], ["--passes", "must be at most 1,000"]),
    # names `run` would reject in every impression
    (["simulate", "--experiment", ""], ["--experiment", "an experiment needs a name"]),
    (["simulate", "--experiment", "x" * 513], ["--experiment", "longer than 512 characters"]),
    (["simulate", "--arms", "a=0.3," + "b" * 513 + "=0.5"], ["--arms: an arm name longer than 512"]),
    (["simulate", "--arms", "a=0.3,b\x1b[31m=0.5"], ["--arms: 'b\\x1b[31m' holds a control or invisible character"]),
    (["simulate", "--experiment", "e\nx"], ["--experiment", "holds a control or invisible character"]),
    (["config", "--set", 'experiments=[{"name": "e", "arms": ["a\\u2028b"]}]'], ["'a\\u2028b' holds a control or invisible character"]),
    # the name is checked before any message prints it (one without arms printed it raw)
    (["config", "--set", 'experiments=[{"name": "e\\nX", "arms": []}]'], ["'e\\nX' holds a control or invisible character (U+000A"]),
    # a figure over an input, the report or another figure; PNG bytes on stdout
    (["report", "{ev}", "-o", "{tmp}/r.html", "--save-figure", "lis_ais={ev}"],
     ["cannot write --save-figure lis_ais=", "it is an input"]),
    (["report", "{ev}", "-o", "{tmp}/r.html", "--save-figure", "lis_ais={tmp}/r.html"], ["it is --output"]),
    (["report", "{ev}", "-o", "{tmp}/r.html", "--save-figure", "lis_ais={tmp}/f.png", "--save-figure", "auc={tmp}/./f.png"],
     ["cannot write --save-figure auc=", "it is --save-figure lis_ais"]),
    (["report", "{ev}", "-o", "{tmp}/r.html", "--save-figure", "lis_ais=-"], ["--save-figure lis_ais=-", "goes to a file"]),
    # two results on stdout would be one garbled stream
    (["run", "--input", "{ev}", "--summary-json", "-", "--history", "-"], ["cannot write --history to stdout", "--summary-json"]),
    (["simulate", "--preferences", "-"], ["cannot write --preferences to stdout", "--output already goes there"]),
    # a saved scrape with nothing scraped
    (["report", "{ev}", "--save-scrape", "{tmp}/s.jsonl"], ["--save-scrape writes what --scrape collects"]),
    # the address, not the port, is what to change
    (["run", "--input", "{ev}", "--host", "nosuchhost.invalid", "--port", "0"], ["no such address", "choose --host"]),
    (["run", "--input", "{ev}", "--host", "192.0.2.1", "--port", "0"], ["Cannot assign requested address", "choose --host"]),
    (["simulate", "--users", "x"], ["--users", "not a whole number"]),
    # learner parameters: refused when the learner is built, not by numba on the first batch
    (["run", "--input", "{ev}", "--set", 'learner.params={"alpha": "x"}'], ["learner.params", "alpha must be a number > 0"]),
    (["run", "--input", "{ev}", "--set", "learner.model=fm", "--set", 'learner.params={"k": 0}'], ["k must be an integer >= 1"]),
    (["offline", "{ev}", "--split-at", "0.5", "--set", 'learner.params={"l1": -1}'], ["l1 must be a number >= 0"]),
    (["config", "--set", "learner.model=river.linear_model.LogisticRegression", "--set", 'learner.params={"bogus": 1}'],
     ["learner.params of river.linear_model.LogisticRegression", "bogus"]),
    # a misspelt key: the keys it could have meant, where msgspec names only the one it did not know
    (["config", "--set", "time.horizn=2h"], ["time has no key 'horizn'", "did you mean 'horizon'", "allowed_lateness"]),
    (["config", "--set", "kafka.topics.impresions=x"], ["kafka.topics has no key", "'impressions'"]),
    (["config", "--set", "horizon=2h"], ["the config has no key 'horizon'", "time, probes"]),
    (["config", "--set", "=3"], ["--set", "a dotted KEY such as time.horizon"]),
    (["config", "--set", "time..horizon=3"], ["--set", "a dotted KEY"]),
    # a value of the wrong type: the key, what it takes and the value (msgspec: "Expected `int`, got `float`")
    (["config", "--set", "evaluation.window_size=1.5"], ["evaluation.window_size takes a whole number, got 1.5"]),
    (["config", "--set", 'experiments=[{"name": "e", "arms": ["a", 3]}]'], ["experiments[0].arms[1] takes a string, got 3"]),
    (["config", "--set", "probes.enabled=noise"], ["probes.enabled takes a list, got 'noise'"]),
    # a misspelt learner parameter or probe: what it could have meant
    (["config", "--set", 'learner.params={"alphaa": 0.1}'], ["'alphaa': did you mean 'alpha'?", "it takes alpha, beta"]),
    (["config", "--set", 'probes.enabled=["future_itm"]'], ["'future_itm': did you mean 'future_item'?"]),
    # a River model's parameters are only used on its first example: it takes one at start
    (["config", "--set", "learner.model=river.linear_model.LogisticRegression", "--set", 'learner.params={"l2": "x"}'],
     ["fails on a first example"]),
])
def test_mistake_is_one_line_and_exit_2(args, words, events, tmp_path):
    (tmp_path / "latin1.json").write_bytes(b"\xff\xfe{}")
    argv = [a.replace("{ev}", str(events)).replace("{tmp}", str(tmp_path)) for a in args]
    if argv[0] == "run":
        argv += ([] if "--port" in argv else ["--port", "-1"]) + ["--quiet"]
    proc = _run(*argv, cwd=tmp_path)
    _said(proc, *words)
    # nothing was run: no dead letters file appeared, no summary
    assert not (tmp_path / "dead-letters.jsonl").exists()


def test_the_printed_config_loads_back_as_a_json_config_file(tmp_path):
    printed = _run("config", "--set", "time.horizon=2h", "--set", "learner.model=fm")
    assert printed.returncode == 0, printed.stderr
    path = tmp_path / "effective.json"
    path.write_text(printed.stdout)
    again = _run("config", "--config", str(path))
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout) == json.loads(printed.stdout)
    # another extension is read as TOML, and the error says so
    other = tmp_path / "effective.conf"
    other.write_text(printed.stdout)
    _said(_run("config", "--config", str(other)), "read as TOML", ".json")


def test_a_whole_number_in_exponent_form_is_a_whole_number():
    printed = _run("config", "--set", "evaluation.window_size=5e4", "--set", "learner.params={\"alpha\": 1.0}")
    assert printed.returncode == 0, printed.stderr
    cfg = json.loads(printed.stdout)
    assert cfg["evaluation"]["window_size"] == 50000
    assert cfg["learner"]["params"]["alpha"] == 1.0


def test_a_short_run_says_why_it_has_no_auc(events, tmp_path):
    # 300 impressions: far less than the 1 h horizon, so every example's look-ahead is cut off
    proc = _run("run", "--input", str(events), "--port", "-1", "--quiet", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "no AUC yet: all" in proc.stdout and "truncated" in proc.stdout
    assert "in seconds" not in proc.stdout  # its times are milliseconds


def test_a_run_without_embeddings_says_why_it_has_no_ais(tmp_path):
    """Vectors written to a side file (simulate --embeddings) and the run not told about it."""
    ev, vec = tmp_path / "ev.jsonl", tmp_path / "vec.jsonl"
    assert _run("simulate", "--impressions", "3000", "-o", str(ev), "--embeddings", str(vec)).returncode == 0
    bare = _run("run", "--input", str(ev), "--port", "-1", "--quiet", cwd=tmp_path)
    assert bare.returncode == 0, bare.stderr
    assert bare.stdout.count("no AIS: none of its examples had an MLLM embedding") == 2, bare.stdout  # both arms
    told = _run("run", "--input", str(ev), "--port", "-1", "--quiet", "--set", f"embeddings.path={vec}", cwd=tmp_path)
    assert told.returncode == 0, told.stderr
    assert "no AIS" not in told.stdout and "mllm" in told.stdout


def test_a_run_on_times_in_seconds_asks_whether_they_are(events, tmp_path):
    """Epoch seconds read as milliseconds squeeze hours of events into seconds: every window
    reaches past the end, and "give a longer input" alone would send the user the wrong way."""
    secs = tmp_path / "seconds.jsonl"
    lines = [json.loads(line) for line in events.read_text().splitlines()]
    secs.write_text("".join(json.dumps({**ev, "ts": ev["ts"] // 1000}) + "\n" for ev in lines))
    proc = _run("run", "--input", str(secs), "--port", "-1", "--quiet", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "no AUC yet: all" in proc.stdout and "(were they written in seconds?)" in proc.stdout, proc.stdout


def test_a_figure_that_cannot_be_saved_is_said_before_the_report_is_written(events, tmp_path):
    hist = tmp_path / "h.jsonl"
    ran = _run("run", "--input", str(events), "--port", "-1", "-q", "--history", str(hist), "--report-every", "0.01",
               cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    out = tmp_path / "r.html"
    for figure, words in ((f"comparison={tmp_path}/x.png", ["no figure 'comparison' in this report"]),
                          (f"lis_ais={tmp_path}/missing/x.png", ["cannot write --save-figure", "no such directory"])):
        _said(_run("report", str(hist), "-o", str(out), "--save-figure", figure), *words)
        assert not out.exists()  # no half of the outputs left behind
    assert not (tmp_path / "missing").exists()

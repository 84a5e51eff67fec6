"""The official openai Python client against the real split-proxy and split-sim binaries.

Run by test.sh after `cargo test` (debug binaries), or by hand:

    SPLIT_BIN=target/debug target/pyenv/bin/python tests/py/test_openai_client.py

Starts two `split-sim upstream` mocks and the gateway on free loopback ports, serves the
guide's 50/50 split route (with a per-arm model rewrite and include_usage on one arm),
and checks non-streaming and streaming chat completions, the model each upstream saw,
and that split_llm_tokens_total equals the usage the mocks reported.

The same gateway also serves:
- /keyed: key-auth with the client's own key (hidden from the upstream) and the provider
  key injected from `$env://PY_PROVIDER_KEY`, an env var of the gateway process only:
  the mock sees the injected key, never the client's, and the access log never holds it;
- /fb: fallback on 429: one arm always answers 429, every completion is served by the
  other arm, with exact counts (mock stats and split_llm_fallbacks_total);
- /sfb: streaming fallback: one arm's SSE stream starts with an error event, the
  streaming client gets a clean stream from the other arm.
"""

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

import openai

BIN = os.environ.get("SPLIT_BIN", "target/debug")
DEADLINE_S = 30


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# The provider key the gateway injects (its environment only) and the client's own key.
PROVIDER_KEY = "sk-provider-secret-0123456789"
CLIENT_KEY = "client-own-key-abcdef"


class Proc:
    """A child process whose stderr is collected; killed on close."""

    def __init__(self, args, env=None):
        self.proc = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, text=True, env=env,
        )
        self.lines = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stderr:
            self.lines.append(line)

    def wait_for(self, pattern):
        deadline = time.time() + DEADLINE_S
        while time.time() < deadline:
            for line in list(self.lines):
                m = re.search(pattern, line)
                if m:
                    return m
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"{pattern!r} not seen:\n{''.join(self.lines)}")

    def close(self):
        self.proc.kill()
        self.proc.wait(timeout=10)


def start_mock(name, *flags):
    for _ in range(5):
        port = free_port()
        mock = Proc([f"{BIN}/split-sim", "upstream", "--listen", f"127.0.0.1:{port}",
                     "--name", name, "--chunk-interval", "5ms", *flags])
        deadline = time.time() + DEADLINE_S
        while time.time() < deadline and mock.proc.poll() is None:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    return mock, port
            except OSError:
                time.sleep(0.05)
        mock.close()
    raise AssertionError(f"mock {name} did not start")


def metric_sum(text, name, **labels):
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        head, value = line.rsplit(" ", 1)
        if all(f'{k}="{v}"' in head for k, v in labels.items()):
            total += float(value)
    return total


def mock_stats(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stats", timeout=10) as r:
        return json.load(r)


def metrics_text(metrics):
    with urllib.request.urlopen(f"http://{metrics}/apisix/prometheus/metrics",
                                timeout=10) as r:
        return r.read().decode()


def upstream(port):
    return {"type": "roundrobin", "nodes": {f"127.0.0.1:{port}": 1}}


def routes(port_a, port_b, port_flaky, port_broken, port_ok):
    """The standalone document: the guide's split plus the /keyed, /fb and /sfb routes."""
    def fallback_arms(bad_port, bad):
        return {"rules": [{"weighted_upstreams": [
            {"name": bad, "weight": 1, "upstream": upstream(bad_port)},
            {"name": "healthy", "weight": 1, "upstream": upstream(port_ok)},
        ]}], "fallback": {"on": [429, 500, 502, 503, 504], "max_retries": 1}}

    return {
        "consumers": [{"username": "py", "plugins": {"key-auth": {"key": CLIENT_KEY}}}],
        "routes": [
            {
                "id": "aimlapi-split",
                "uri": "/chat/completions",
                "upstream": upstream(port_a),
                # The guide's 50/50 shorthand split, a model per arm, include_usage on a.
                "plugins": {"traffic-split": {"rules": [
                    {"weight": 50, "upstream": upstream(port_a), "name": "a",
                     "llm": {"include_usage": True},
                     "rewrite": {"uri": "/v1/chat/completions",
                                 "body": {"model": "model-a"}}},
                    {"weight": 50, "upstream": upstream(port_b), "name": "b",
                     "rewrite": {"uri": "/v2/chat/completions",
                                 "body": {"model": "model-b"}}},
                ]}},
            },
            {
                "id": "keyed",
                "uri": "/keyed/chat/completions",
                "upstream": upstream(port_ok),
                "plugins": {
                    "key-auth": {"hide_credentials": True},
                    "traffic-split": {"rules": [{"weighted_upstreams": [{
                        "name": "provider", "weight": 1, "upstream": upstream(port_ok),
                        "rewrite": {"uri": "/v1/chat/completions", "headers": {"set": {
                            "Authorization": "Bearer $env://PY_PROVIDER_KEY"}}},
                    }]}]},
                },
            },
            {
                "id": "fb",
                "uri": "/fb/chat/completions",
                "upstream": upstream(port_ok),
                "plugins": {"traffic-split": fallback_arms(port_flaky, "flaky")},
            },
            {
                "id": "sfb",
                "uri": "/sfb/chat/completions",
                "upstream": upstream(port_ok),
                "plugins": {"traffic-split": fallback_arms(port_broken, "broken")},
            },
        ],
    }


def check_split(proxy, metrics):
    """The guide's split: models per arm, streaming, token counters equal the usage."""
    client = openai.OpenAI(base_url=f"http://{proxy}", api_key="not-used",
                           max_retries=0, timeout=DEADLINE_S)
    messages = [{"role": "user", "content": "ping pong"}]
    usage = {}  # arm -> [prompt, completion]

    def add(arm, u):
        acc = usage.setdefault(arm, [0, 0])
        acc[0] += u.prompt_tokens
        acc[1] += u.completion_tokens

    # Non-streaming: arms alternate a, b; each mock echoes the model it received.
    for i in range(4):
        arm = "ab"[i % 2]
        r = client.chat.completions.create(model="gpt-4", messages=messages)
        assert r.model == f"model-{arm}", r
        assert r.choices[0].message.content, r
        add(arm, r.usage)

    # Streaming: arm a gets stream_options.include_usage from the gateway.
    for i in range(4):
        arm = "ab"[i % 2]
        stream = client.chat.completions.create(model="gpt-4", messages=messages,
                                                stream=True)
        text, seen = "", None
        for chunk in stream:
            assert chunk.model == f"model-{arm}", chunk
            if chunk.choices and chunk.choices[0].delta.content:
                text += chunk.choices[0].delta.content
            if chunk.usage is not None:
                seen = chunk.usage
        assert text, "streamed content"
        assert (seen is not None) == (arm == "a"), (arm, seen)
        if seen is not None:
            add(arm, seen)

    # The counters are settled when each body ends; allow the last one a moment.
    deadline = time.time() + 10
    while True:
        body = metrics_text(metrics)
        got = {arm: [metric_sum(body, "split_llm_tokens_total", route="aimlapi-split",
                                arm=arm, type=t) for t in ("prompt", "completion")]
               for arm in usage}
        want = {arm: [float(p), float(c)] for arm, (p, c) in usage.items()}
        if got == want or time.time() > deadline:
            break
        time.sleep(0.1)
    assert got == want, (got, want)
    assert want["a"][1] > 0 and want["b"][1] > 0
    return want


def check_key_injection(proxy, gw, access_log):
    """The client authenticates with its own key; the upstream sees the provider key."""
    messages = [{"role": "user", "content": "ping pong"}]
    client = openai.OpenAI(base_url=f"http://{proxy}/keyed", api_key=CLIENT_KEY,
                           default_headers={"apikey": CLIENT_KEY},
                           max_retries=0, timeout=DEADLINE_S)
    raw = client.chat.completions.with_raw_response.create(model="gpt-4",
                                                           messages=messages)
    completion = raw.parse()
    assert completion.choices[0].message.content, completion
    seen = raw.http_response.json()["x_split_mock"]["headers"]
    assert seen.get("authorization") == f"Bearer {PROVIDER_KEY}", seen
    assert "apikey" not in seen, seen
    assert CLIENT_KEY not in json.dumps(seen), seen
    # Streaming goes through the same arm and rewrite.
    stream = client.chat.completions.create(model="gpt-4", messages=messages, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices)

    # Without the client's key: key-auth refuses before anything reaches the upstream.
    anonymous = openai.OpenAI(base_url=f"http://{proxy}/keyed", api_key=CLIENT_KEY,
                              max_retries=0, timeout=DEADLINE_S)
    try:
        anonymous.chat.completions.create(model="gpt-4", messages=messages)
        raise AssertionError("a request without the apikey header was let through")
    except openai.AuthenticationError as e:
        assert e.status_code == 401, e

    # Both admitted requests are logged, the refused one too; the secret never is.
    deadline = time.time() + 10
    lines = []
    while time.time() < deadline:
        with open(access_log) as f:
            lines = [json.loads(line) for line in f if '"/keyed/' in line]
        if len(lines) >= 3:
            break
        time.sleep(0.05)
    assert len(lines) == 3, lines
    assert [line["status"] for line in lines] == [200, 200, 401], lines
    assert [line.get("consumer") for line in lines[:2]] == ["py", "py"], lines
    with open(access_log) as f:
        log = f.read()
    assert PROVIDER_KEY not in log, "the provider key is in the access log"
    assert PROVIDER_KEY not in "".join(gw.lines), "the provider key is in the gateway log"


def check_fallback(proxy, metrics, port_flaky, port_ok):
    """Arm `flaky` always answers 429: every completion is served by `healthy`."""
    client = openai.OpenAI(base_url=f"http://{proxy}/fb", api_key="not-used",
                           max_retries=0, timeout=DEADLINE_S)
    messages = [{"role": "user", "content": "ping pong"}]
    before_ok = mock_stats(port_ok)["requests"]
    n = 6
    for _ in range(n):
        r = client.chat.completions.create(model="gpt-4", messages=messages)
        assert r.id.startswith("chatcmpl-healthy-"), r.id
        assert r.choices[0].message.content, r
    # 1:1 weights: the split picks each arm 3 times; each `flaky` pick falls back once.
    flaky = mock_stats(port_flaky)
    assert flaky["requests"] == n // 2, flaky
    assert flaky["injected_failures"] == n // 2, flaky
    assert mock_stats(port_ok)["requests"] - before_ok == n
    fallbacks = metric_sum(metrics_text(metrics), "split_llm_fallbacks_total", route="fb",
                           from_arm="flaky", to_arm="healthy", reason="http_429")
    assert fallbacks == n // 2, fallbacks


def check_stream_fallback(proxy, metrics):
    """Arm `broken` streams an error event first: the client gets `healthy`'s stream."""
    client = openai.OpenAI(base_url=f"http://{proxy}/sfb", api_key="not-used",
                           max_retries=0, timeout=DEADLINE_S)
    messages = [{"role": "user", "content": "ping pong"}]
    n = 4
    for _ in range(n):
        stream = client.chat.completions.create(model="gpt-4", messages=messages,
                                                stream=True)
        text, ids = "", set()
        for chunk in stream:
            ids.add(chunk.id)
            if chunk.choices and chunk.choices[0].delta.content:
                text += chunk.choices[0].delta.content
        assert text == "Pong! How can I assist you today?", text
        assert len(ids) == 1 and ids.pop().startswith("chatcmpl-healthy-"), ids
    fallbacks = metric_sum(metrics_text(metrics), "split_llm_fallbacks_total",
                           route="sfb", from_arm="broken", to_arm="healthy",
                           reason="sse_error")
    assert fallbacks == n // 2, fallbacks


def main():
    started = time.time()
    tmp = tempfile.mkdtemp(prefix="split-py-")
    procs = []
    try:
        mock_a, port_a = start_mock("arm-a")
        procs.append(mock_a)
        mock_b, port_b = start_mock("arm-b")
        procs.append(mock_b)
        # Retry-After: 0, so the 429 arm is not skipped and every pick of it falls back.
        mock_flaky, port_flaky = start_mock("flaky", "--fail-rate", "1", "--status", "429",
                                            "--retry-after", "0")
        procs.append(mock_flaky)
        mock_broken, port_broken = start_mock("broken", "--first-event-error")
        procs.append(mock_broken)
        mock_ok, port_ok = start_mock("healthy")
        procs.append(mock_ok)

        conf = os.path.join(tmp, "apisix.json")
        with open(conf, "w") as f:
            json.dump(routes(port_a, port_b, port_flaky, port_broken, port_ok), f)
        access_log = os.path.join(tmp, "access.log")
        # The provider key is in the gateway's environment only (not the mocks').
        env = dict(os.environ, PY_PROVIDER_KEY=PROVIDER_KEY)
        gw = Proc([f"{BIN}/split-proxy", "--standalone", conf,
                   "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0",
                   "--metrics-listen", "127.0.0.1:0", "--workers", "2",
                   "--access-log", access_log,
                   "--data-dir", os.path.join(tmp, "data")], env=env)
        procs.append(gw)
        gw.wait_for("config source:")
        proxy = gw.wait_for(r"proxy listening on (\S+)").group(1)
        metrics = gw.wait_for(r"metrics listening on (\S+)").group(1)

        tokens = check_split(proxy, metrics)
        check_key_injection(proxy, gw, access_log)
        check_fallback(proxy, metrics, port_flaky, port_ok)
        check_stream_fallback(proxy, metrics)
        print(f"openai {openai.__version__}: split (tokens {tokens}), key injection, "
              f"fallback on 429 and on a first SSE error event OK "
              f"in {time.time() - started:.1f} s")
    finally:
        for p in procs:
            p.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
    sys.exit(0)

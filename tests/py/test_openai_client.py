"""The official openai Python client against the real split-proxy and split-sim binaries.

Run by test.sh after `cargo test` (debug binaries), or by hand:

    SPLIT_BIN=target/debug target/pyenv/bin/python tests/py/test_openai_client.py

Starts two `split-sim upstream` mocks and the gateway on free loopback ports, serves the
guide's 50/50 split route (with a per-arm model rewrite and include_usage on one arm),
and checks non-streaming and streaming chat completions, the model each upstream saw,
and that split_llm_tokens_total equals the usage the mocks reported.
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


class Proc:
    """A child process whose stderr is collected; killed on close."""

    def __init__(self, args):
        self.proc = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, text=True,
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


def start_mock(name):
    for _ in range(5):
        port = free_port()
        mock = Proc([f"{BIN}/split-sim", "upstream", "--listen", f"127.0.0.1:{port}",
                     "--name", name, "--chunk-interval", "5ms"])
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


def main():
    tmp = tempfile.mkdtemp(prefix="split-py-")
    procs = []
    try:
        mock_a, port_a = start_mock("arm-a")
        procs.append(mock_a)
        mock_b, port_b = start_mock("arm-b")
        procs.append(mock_b)

        def upstream(port):
            return {"type": "roundrobin", "nodes": {f"127.0.0.1:{port}": 1}}

        # The guide's 50/50 shorthand split, plus a model per arm and include_usage on a.
        doc = {"routes": [{
            "id": "aimlapi-split",
            "uri": "/chat/completions",
            "upstream": upstream(port_a),
            "plugins": {"traffic-split": {"rules": [
                {"weight": 50, "upstream": upstream(port_a), "name": "a",
                 "llm": {"include_usage": True},
                 "rewrite": {"uri": "/v1/chat/completions", "body": {"model": "model-a"}}},
                {"weight": 50, "upstream": upstream(port_b), "name": "b",
                 "rewrite": {"uri": "/v2/chat/completions", "body": {"model": "model-b"}}},
            ]}},
        }]}
        conf = os.path.join(tmp, "apisix.json")
        with open(conf, "w") as f:
            json.dump(doc, f)
        gw = Proc([f"{BIN}/split-proxy", "--standalone", conf,
                   "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0",
                   "--metrics-listen", "127.0.0.1:0", "--workers", "2",
                   "--data-dir", os.path.join(tmp, "data")])
        procs.append(gw)
        gw.wait_for("config source:")
        proxy = gw.wait_for(r"proxy listening on (\S+)").group(1)
        metrics = gw.wait_for(r"metrics listening on (\S+)").group(1)

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
            body = urllib.request.urlopen(
                f"http://{metrics}/apisix/prometheus/metrics", timeout=10).read().decode()
            got = {arm: [metric_sum(body, "split_llm_tokens_total", route="aimlapi-split",
                                    arm=arm, type=t) for t in ("prompt", "completion")]
                   for arm in usage}
            want = {arm: [float(p), float(c)] for arm, (p, c) in usage.items()}
            if got == want or time.time() > deadline:
                break
            time.sleep(0.1)
        assert got == want, (got, want)
        assert want["a"][1] > 0 and want["b"][1] > 0
        print(f"openai {openai.__version__}: chat completions through split OK, tokens {want}")
    finally:
        for p in procs:
            p.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
    sys.exit(0)

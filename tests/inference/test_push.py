"""`higgs-tune push`: the real command and huggingface_hub's real client, against a local stand-in for the
Hub (HF_ENDPOINT) that records every request: the repo is created as asked and one commit carries the
weights folder, card included; a folder without a card or weights is refused before any request."""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from higgs_tune.inference.push import PushError, folder_to_push


class FakeHub(BaseHTTPRequestHandler):
    """Answers the calls `create_repo` + `upload_folder` make, as the Hub does, and records them.
    Every file is declared "regular" at pre-upload, so its bytes travel inside the commit itself."""

    requests: list[dict] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        base = f"http://{self.headers['Host']}"
        record = {"path": self.path, "auth": self.headers.get("Authorization"), "body": body}
        FakeHub.requests.append(record)
        if record["auth"] == "Bearer hf_read_only":
            self.send_error(403, "You don't have the rights to create a model under the namespace someone")
            return
        if self.path == "/api/repos/create":
            asked = json.loads(body)
            reply = {"url": f"{base}/{asked['organization']}/{asked['name']}"}
        elif self.path == "/api/validate-yaml":  # the Hub checks a README's metadata before the commit
            reply = {"errors": [], "warnings": []}
        elif "/preupload/" in self.path:
            files = json.loads(body)["files"]
            reply = {
                "files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files]
            }
        elif "/commit/" in self.path:
            repo = self.path.removeprefix("/api/models/").split("/commit/")[0]
            reply = {
                "commitUrl": f"{base}/{repo}/commit/0123",
                "commitOid": "0123" * 10,
                "pullRequestUrl": None,
            }
        else:
            self.send_error(404)
            return
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args) -> None:  # keep the test output clean
        pass


@pytest.fixture
def hub():
    FakeHub.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeHub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", FakeHub.requests
    server.shutdown()


def _adapter(folder: Path, card: bool = True, weights: bool = True) -> Path:
    """A weights folder as a checkpoint leaves it (the bytes need not be a real adapter to be uploaded)."""
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text('{"peft_type": "LORA"}')
    if weights:
        (folder / "adapter_model.safetensors").write_bytes(bytes(range(256)) * 8)
    if card:
        (folder / "README.md").write_text("---\nlibrary_name: peft\npipeline_tag: text-to-speech\n---\n# A\n")
    return folder


def _push(
    folder: Path,
    endpoint: str,
    *extra: str,
    token: str = "hf_test_token",
    repo: str = "someone/voice",
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "HF_ENDPOINT": endpoint,
        "HF_TOKEN": token,
        "HF_HUB_DISABLE_TELEMETRY": "1",
        **(env or {}),
    }
    return subprocess.run(
        [sys.executable, "-m", "higgs_tune", "push", str(folder), "--repo", repo, *extra],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.cli
def test_push_creates_the_repo_and_commits_the_folder_with_its_card(tmp_path, hub):
    endpoint, requests = hub
    folder = _adapter(tmp_path / "checkpoint-4" / "adapter")
    done = _push(folder, endpoint, "--private")
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"pushed: {endpoint}/someone/voice/commit/0123" in done.stdout
    create, *_, commit = requests
    assert "/api/validate-yaml" in [r["path"] for r in requests]
    assert create["path"] == "/api/repos/create" and create["auth"] == "Bearer hf_test_token"
    assert (
        json.loads(create["body"]).items()
        >= {"name": "voice", "organization": "someone", "visibility": "private"}.items()
    )
    assert commit["path"] == "/api/models/someone/voice/commit/main"
    lines = [json.loads(line) for line in commit["body"].decode().splitlines()]
    files = {x["value"]["path"]: base64.b64decode(x["value"]["content"]) for x in lines if x["key"] == "file"}
    assert files == {p.name: p.read_bytes() for p in folder.iterdir()}


@pytest.mark.cli
def test_a_folder_without_a_card_is_refused_before_any_request(tmp_path, hub):
    endpoint, requests = hub
    done = _push(_adapter(tmp_path / "adapter", card=False), endpoint)
    assert done.returncode == 2 and requests == []
    (line,) = [x for x in done.stderr.splitlines() if "no model card" in x]
    assert "Traceback" not in done.stderr


@pytest.mark.cli
def test_the_hubs_refusal_is_one_line_not_a_traceback(tmp_path, hub):
    endpoint, requests = hub
    done = _push(_adapter(tmp_path / "adapter"), endpoint, token="hf_read_only")
    assert done.returncode == 2 and len(requests) == 1
    assert "403" in done.stderr and "Traceback" not in done.stderr


def _closed_port() -> int:
    """A loopback port nothing listens on: bound, then closed, so connecting to it is refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.cli
@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("offline", "offline mode is enabled"),
        ("refused", "Connection refused"),
        ("bad_repo_id", "is not a Hub repo id"),
    ],
)
def test_no_network_or_a_bad_repo_id_is_one_line_not_a_traceback(tmp_path, case, expected):
    """Only loopback is ever contacted: every case points HF_ENDPOINT at a closed loopback port."""
    endpoint = f"http://127.0.0.1:{_closed_port()}"
    env = {"HF_HUB_OFFLINE": "1"} if case == "offline" else {}
    repo = "not a repo id!" if case == "bad_repo_id" else "someone/voice"
    done = _push(_adapter(tmp_path / "adapter"), endpoint, repo=repo, env=env)
    assert done.returncode == 2, done.stderr[-3000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    (line,) = [x for x in done.stderr.splitlines() if expected in x]
    assert ("nothing was uploaded" in line) == (case != "bad_repo_id")


def test_what_is_pushed_must_hold_a_card_and_weights(tmp_path):
    with pytest.raises(PushError, match="no weights"):
        folder_to_push(_adapter(tmp_path / "a", weights=False))
    with pytest.raises(PushError, match="no model card"):
        folder_to_push(_adapter(tmp_path / "b", card=False))
    with pytest.raises(PushError, match="no such folder"):
        folder_to_push(tmp_path / "c")
    good = _adapter(tmp_path / "checkpoint-1" / "adapter")
    (tmp_path / "checkpoint-1" / "trainer_state.json").write_text('{"mode": "lora"}')
    assert folder_to_push(tmp_path / "checkpoint-1") == good  # a checkpoint pushes its weights folder only

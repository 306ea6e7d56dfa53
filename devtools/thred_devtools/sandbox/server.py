"""Running the sandbox on a real socket: in a background thread or in the foreground."""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType

import uvicorn

from thred_devtools.sandbox.app import create_app
from thred_devtools.sandbox.config import SandboxConfig

__all__ = ["RunningSandbox", "serve", "start_sandbox"]


class RunningSandbox:
    """A sandbox served by uvicorn in a daemon thread; ``stop()`` shuts it down cleanly."""

    def __init__(self, config: SandboxConfig, host: str = "127.0.0.1", port: int = 0) -> None:
        self.config = config
        self.app = create_app(config)
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, port))
        self.host = host
        self.port: int = self._sock.getsockname()[1]
        self.url = f"http://{host}:{self.port}"
        uv_config = uvicorn.Config(
            self.app,
            log_level="warning",
            access_log=False,
            lifespan="on",
            timeout_keep_alive=30,
            timeout_graceful_shutdown=5,
        )
        self._server = uvicorn.Server(uv_config)
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [self._sock]},
            name=f"thred-sandbox-{self.port}",
            daemon=True,
        )
        self._stopped = False

    def start(self, timeout_s: float = 15.0) -> RunningSandbox:
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError("the sandbox server exited during start-up")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError("the sandbox server did not start in time")
            time.sleep(0.01)
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        if self._stopped:
            return
        self._stopped = True
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout_s)
        if self._thread.is_alive():
            self._server.force_exit = True
            self._thread.join(timeout_s)
        self._sock.close()
        self.app.state.sandbox.close()

    def __enter__(self) -> RunningSandbox:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"RunningSandbox(url={self.url!r})"


def start_sandbox(config: SandboxConfig, host: str = "127.0.0.1", port: int = 0) -> RunningSandbox:
    """Start a sandbox in the background; returns once it accepts connections."""
    return RunningSandbox(config, host, port).start()


def serve(config: SandboxConfig, host: str = "127.0.0.1", port: int = 8765) -> None:
    """Serve in the foreground until interrupted (the ``thred-dev sandbox`` command)."""
    app = create_app(config)
    try:
        uvicorn.run(app, host=host, port=port, log_level="info", access_log=False)
    finally:
        app.state.sandbox.close()

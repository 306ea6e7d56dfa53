"""Processes the benchmarks measure: the sandbox server and the commands under test.

Every measured program runs in its own process so its CPU time and peak memory are its own:
the sandbox is read from ``/proc/<pid>/stat`` while it serves, a command from ``wait4``'s
resource usage when it ends (which includes the children it waited for, such as Dagster's
step processes).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import httpx

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a live process (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


@dataclass(frozen=True)
class Measured:
    """One finished command: wall time, its (and its waited-for children's) CPU, peak RSS."""

    argv: list[str]
    returncode: int
    wall_s: float
    cpu_s: float
    max_rss_mb: float
    stdout: str
    stderr: str

    def check(self, allowed: tuple[int, ...] = (0,)) -> Measured:
        if self.returncode not in allowed:
            tail = "\n".join(self.stderr.splitlines()[-15:])
            raise RuntimeError(f"{' '.join(self.argv)} exited {self.returncode}:\n{tail}")
        return self


def run_measured(
    argv: list[str], env: dict[str, str], cwd: Path | None = None, timeout_s: float = 3600
) -> Measured:
    """Run ``argv`` to the end; stdout/stderr go through files so pipes never block it."""
    folder = Path(env.get("BENCH_TMP") or tempfile.gettempdir())
    out_path = folder / f"bench-{os.getpid()}-{time.monotonic_ns()}"
    with open(f"{out_path}.out", "w+b") as out, open(f"{out_path}.err", "w+b") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=out, stderr=err)  # noqa: S603
        deadline = started + timeout_s
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.005)
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    for suffix in (".out", ".err"):
        Path(f"{out_path}{suffix}").unlink(missing_ok=True)
    return Measured(
        argv=argv,
        returncode=proc.returncode,
        wall_s=wall,
        cpu_s=usage.ru_utime + usage.ru_stime,
        max_rss_mb=usage.ru_maxrss / 1024,
        stdout=stdout,
        stderr=stderr,
    )


class SandboxProcess:
    """``thred-dev sandbox`` in its own process (optionally profiled, ``profiled.py``)."""

    def __init__(
        self,
        *,
        latency_ms: int = 0,
        rate_limit: float | None = None,
        burst: int | None = None,
        data_dir: Path | None = None,
        profile_to: Path | None = None,
        port: int | None = None,
    ) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        argv = [sys.executable, "-m", "thred_devtools.cli"]
        if profile_to is not None:
            argv = [sys.executable, "-m", "benchmarks.profiled", str(profile_to), "thred-dev"]
        argv += ["sandbox", "--port", str(self.port)]
        if latency_ms:
            argv += ["--latency-ms", str(latency_ms)]
        if rate_limit:
            argv += ["--rate-limit", f"{rate_limit:g}"]
        if burst:
            argv += ["--rate-limit-burst", str(burst)]
        if data_dir is not None:
            argv += ["--data-dir", str(data_dir)]
        self.argv = argv
        self.proc: subprocess.Popen[bytes] | None = None
        self._stderr: IO[bytes] | None = None

    def start(self, timeout_s: float = 60) -> SandboxProcess:
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed by stop()
        self.proc = subprocess.Popen(  # noqa: S603
            self.argv, cwd=REPO, stdout=subprocess.DEVNULL, stderr=self._stderr
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self._stderr.seek(0)
                tail = self._stderr.read().decode(errors="replace").splitlines()[-5:]
                raise RuntimeError(
                    f"the sandbox exited at start ({' '.join(self.argv)}): " + " | ".join(tail)
                )
            try:
                httpx.get(f"{self.url}/_sandbox/health", timeout=1).raise_for_status()
                return self
            except httpx.HTTPError:
                time.sleep(0.1)
        self.stop()
        raise TimeoutError("the sandbox did not start")

    def cpu_s(self) -> float:
        assert self.proc is not None
        return proc_cpu_s(self.proc.pid)

    def stats(self) -> dict[str, Any]:
        # objects=0: counters only, where the sandbox supports it (the object scan is skipped)
        body: dict[str, Any] = httpx.get(
            f"{self.url}/_sandbox/stats", params={"objects": "0"}, timeout=60
        ).json()
        return body

    def stop(self) -> None:
        """SIGINT: uvicorn shuts down cleanly, so a profile is written on the way out."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def __enter__(self) -> SandboxProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def request_counts(stats: dict[str, Any]) -> dict[str, int]:
    """Totals of the sandbox's ``/v1/`` requests: all, writes, 429s, token requests."""
    totals = {"requests": 0, "writes": 0, "rate_limited": 0, "tokens": 0}
    for row in stats.get("requests", []):
        route, method, n = str(row["route"]), str(row["method"]), int(row["count"])
        if not route.startswith("/v1/"):
            continue
        totals["requests"] += n
        if int(row["status"]) == 429:
            totals["rate_limited"] += n
        if route.endswith("/oauth2/token/"):
            totals["tokens"] += n
        elif method in ("POST", "PUT", "PATCH", "DELETE"):
            totals["writes"] += n
    return totals

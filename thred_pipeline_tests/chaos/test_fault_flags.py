"""The sandbox's fault switches on a command line: parsing, validation, and a real server."""

from __future__ import annotations

import argparse

import httpx
import pytest
from thred_devtools.sandbox import FaultConfig, SandboxConfig, start_sandbox
from thred_devtools.sandbox.config import add_fault_arguments, fault_config_from_args


def parse(*argv: str) -> FaultConfig:
    parser = argparse.ArgumentParser(prog="thred-dev sandbox")
    add_fault_arguments(parser)
    return fault_config_from_args(parser.parse_args(list(argv)))


def test_no_flags_means_no_faults() -> None:
    config = parse()
    assert config == FaultConfig()
    assert not config.any_active()


def test_every_flag_lands_in_the_config() -> None:
    config = parse(
        "--latency-ms=20",
        "--jitter-ms=30",
        "--rate-limit=12.5",
        "--rate-limit-burst=4",
        "--error-rate=0.06",
        "--hang-rate=0.01",
        "--hang-s=2.5",
        "--drop-rate=0.02",
        "--fault-seed=42",
    )
    assert config.seed == 42
    assert (config.latency_ms, config.jitter_ms) == (20, 30)
    assert (config.rate_limit_rps, config.rate_limit_burst) == (12.5, 4)
    rates = (config.error_500_rate, config.error_502_rate, config.error_503_rate)
    assert sum(rates) == pytest.approx(0.06)
    assert all(r == pytest.approx(0.02) for r in rates)
    assert (config.hang_rate, config.hang_s) == (0.01, 2.5)
    assert config.drop_after_commit_rate == 0.02
    assert config.any_active()


@pytest.mark.parametrize(
    "argv",
    [
        ["--error-rate=1.5"],
        ["--drop-rate=-0.1"],
        ["--hang-rate=nan"],
        ["--latency-ms=-1"],
        ["--jitter-ms=fast"],
        ["--rate-limit=0"],
        ["--rate-limit-burst=0"],
    ],
)
def test_bad_values_are_refused_by_the_parser(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        parse(*argv)
    assert argv[0].split("=")[0] in capsys.readouterr().err  # usage names the bad switch


def test_fractions_that_add_up_to_more_than_one_are_refused() -> None:
    with pytest.raises(ValueError, match="must not exceed 1"):
        parse("--error-rate=0.6", "--drop-rate=0.5")


def test_the_flags_drive_a_real_sandbox() -> None:
    faults = parse("--error-rate=1", "--fault-seed=3")
    with (
        start_sandbox(SandboxConfig(faults=faults)) as sandbox,
        httpx.Client(base_url=sandbox.url, timeout=10) as http,
    ):
        statuses = {
            http.post("/v1/platform/oauth2/token/", auth=("demo-partner", "x")).status_code
            for _ in range(30)
        }
        assert statuses <= {500, 502, 503} and len(statuses) > 1
        counts = http.get("/_sandbox/stats").json()["faults"]
        assert sum(counts.values()) == 30
        assert http.get("/_sandbox/faults").json()["faults"]["seed"] == 3

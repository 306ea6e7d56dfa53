"""Alert messages for a chat webhook: what changed, where, how much money, and a link to the run.

The sensors in ``thred_pipeline.sensors`` decide *when* to alert (once per state change); this
module only turns a change into a Slack-compatible message (``{"text": ..., "blocks": [...]}``,
also accepted by Mattermost, Rocket.Chat and most "incoming webhook" receivers) and posts it.

Settings, read when a sensor ticks (so they live in the user-code server's environment):

- ``THRED_ALERT_WEBHOOK_URL``: where to post. Unset or empty: no alert is sent and the sensors
  skip with a reason saying so. The URL is itself a secret (a Slack webhook URL is a
  credential): it never appears in a message, a log line or an error.
- ``THRED_DAGSTER_BASE_URL``: the Dagster UI's address (``https://dagster.example.com``); each
  message links to ``<base>/runs/<run id>``. Unset: the run id is shown without a link.

No secret is ever posted: every string of a message goes through :func:`redact`, which removes
the values of the secret settings in the environment (``THRED_API_KEY``, passwords in database
URLs, any ``*_KEY``/``*_TOKEN``/``*_SECRET``/``*_PASSWORD`` variable, the webhook URL itself)
and anything shaped like a credential (``user:password@`` in URLs, ``Bearer``/``Basic``
headers, ``api_key=...``/``token=...`` pairs).

Nothing here imports Dagster, and nothing in the sync engine imports this module.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx

WEBHOOK_ENV = "THRED_ALERT_WEBHOOK_URL"
BASE_URL_ENV = "THRED_DAGSTER_BASE_URL"
REDACTED = "***"

MAX_CHECKS_SHOWN = 20  # a message lists at most this many checks, then "and N more"
MAX_TEXT = 2900  # Slack refuses a section text over 3000 characters
MAX_DETAIL = 600  # one check's description or one error, as shown
MAX_BLOCKS = 50  # Slack's limit per message

# Names of environment variables whose values are secrets, whatever they hold.
_SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|WEBHOOK)", re.IGNORECASE)
# Variables that hold URLs which may embed a password.
_URL_SETTINGS = ("THRED_WAREHOUSE_URL", "THRED_LEDGER_URL", "DAGSTER_PG_URL", "DATABASE_URL")
_MIN_SECRET = 8  # shorter values (flags, ports, "true") would redact ordinary words

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # scheme://user:password@host -> scheme://user:***@host
    (re.compile(r"(?P<head>[a-zA-Z][\w+.-]*://[^\s:/@]*:)[^\s@/]+@"), rf"\g<head>{REDACTED}@"),
    # Authorization headers
    (
        re.compile(r"\b(?P<head>(?:Bearer|Basic|Token)\s+)[A-Za-z0-9._~+/=-]{6,}"),
        rf"\g<head>{REDACTED}",
    ),
    # key=value / "key": "value" pairs naming a secret
    (
        re.compile(
            r"(?P<head>\b[\w-]*(?:api[_-]?key|token|secret|password|passwd|client_secret)"
            r"[\"']?\s*[:=]\s*[\"']?)[^\s\"',;&}]+",
            re.IGNORECASE,
        ),
        rf"\g<head>{REDACTED}",
    ),
)


class AlertDeliveryError(Exception):
    """The webhook did not take the message; the text names no URL and no secret."""


@dataclass(frozen=True)
class AlertSettings:
    webhook_url: str | None
    dagster_base_url: str | None
    timeout_s: float = 10.0
    attempts: int = 3

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> AlertSettings:
        env = os.environ if env is None else env
        webhook = env.get(WEBHOOK_ENV, "").strip() or None
        base = env.get(BASE_URL_ENV, "").strip().rstrip("/") or None
        return cls(webhook_url=webhook, dagster_base_url=base)

    def run_url(self, run_id: str) -> str | None:
        return f"{self.dagster_base_url}/runs/{run_id}" if self.dagster_base_url else None

    def __repr__(self) -> str:  # the webhook URL is a credential
        shown = "set" if self.webhook_url else "unset"
        return f"AlertSettings(webhook_url=<{shown}>, dagster_base_url={self.dagster_base_url!r})"


# --- what the sensors report -----------------------------------------------------------------


@dataclass(frozen=True)
class CheckChange:
    """One check of one partition that changed state: failing now, or passing again."""

    asset: str  # "thred/customers"
    check: str  # "window_matches"
    partition: str | None
    state: str  # "ERROR" | "WARN" | "PASSED"
    previous: str  # "PASSED" (or never evaluated) | "WARN" | "ERROR"
    description: str = ""
    money_at_stake_cents: int | None = None

    @property
    def failing(self) -> bool:
        return self.state != "PASSED"


@dataclass(frozen=True)
class RunChecks:
    """The check changes one run produced."""

    run_id: str
    job: str
    partition: str | None
    changes: Sequence[CheckChange] = field(default_factory=tuple)


@dataclass(frozen=True)
class RunAlert:
    """A run that failed, or a job (and partition) that succeeds again after a failed run."""

    kind: str  # "failed" | "recovered"
    run_id: str
    job: str
    partition: str | None
    detail: str = ""  # the failure's first error, or what recovered
    previous_run_id: str | None = None
    will_retry: bool = False


# --- messages --------------------------------------------------------------------------------


def money(cents: int) -> str:
    """Minor units as they are: the currency (and its decimals) varies per business."""
    return f"{cents:,} minor units"


def check_message(runs: Sequence[RunChecks], settings: AlertSettings) -> dict[str, Any]:
    """One message for the check state changes of one tick: per run, its job, partition, link,
    the checks that started failing (with the money at stake) and those that recovered."""
    changes = [c for run in runs for c in run.changes]
    failing = [c for c in changes if c.failing]
    errors = sum(c.state == "ERROR" for c in failing)
    stake = sum(c.money_at_stake_cents or 0 for c in failing)
    parts = []
    if failing:
        parts.append(f"{len(failing)} failing ({errors} ERROR, {len(failing) - errors} WARN)")
    if len(changes) > len(failing):
        parts.append(f"{len(changes) - len(failing)} recovered")
    headline = f"Thred checks: {', '.join(parts)}"
    icon = ":white_check_mark:"
    if failing:
        icon = ":red_circle:" if errors else ":large_orange_circle:"
    fallback = f"{icon} {headline}"
    if failing:
        fallback += f"; money at stake {money(stake)}"
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _cut(headline, 150)}},
    ]
    for run in runs:
        url = settings.run_url(run.run_id)
        where = _where(run.job, run.partition)
        fallback += f" | {where}, run {run.run_id}" + (f" {url}" if url else "")
        run_failing = [c for c in run.changes if c.failing]
        run_recovered = [c for c in run.changes if not c.failing]
        fields = [
            _field("Job", f"`{_escape(run.job)}`"),
            _field("Partition", _escape(run.partition or "none (unpartitioned)")),
            _field("Run", _link(url, run.run_id)),
        ]
        if run_failing:
            run_stake = sum(c.money_at_stake_cents or 0 for c in run_failing)
            fields.append(_field("Money at stake", money(run_stake)))
        lines = [_check_line(c) for c in (*run_failing, *run_recovered)[:MAX_CHECKS_SHOWN]]
        hidden = len(run.changes) - len(lines)
        if hidden > 0:
            lines.append(f"…and {hidden} more (see the run)")
        blocks.append({"type": "section", "fields": fields})
        blocks.extend(_sections(lines))
        if len(blocks) >= MAX_BLOCKS - 2:
            break
    blocks.append(_context(settings))
    return redact_payload({"text": _cut(fallback, MAX_TEXT), "blocks": blocks})  # type: ignore[no-any-return]


def run_message(alert: RunAlert, settings: AlertSettings) -> dict[str, Any]:
    where = _where(alert.job, alert.partition)
    url = settings.run_url(alert.run_id)
    if alert.kind == "failed":
        headline = f"Thred run failed: {alert.job}"
        icon = ":red_circle:"
        summary = f"Run `{alert.run_id}` failed."
        if alert.will_retry:
            summary += " Dagster retries it automatically; no new alert while it keeps failing."
    else:
        headline = f"Thred run recovered: {alert.job}"
        icon = ":white_check_mark:"
        summary = f"Run `{alert.run_id}` succeeded after failed run `{alert.previous_run_id}`."
    fallback = f"{icon} {headline} — {where}. Run {alert.run_id}" + (f": {url}" if url else "")
    fields = [
        _field("Job", f"`{_escape(alert.job)}`"),
        _field("Partition", _escape(alert.partition or "none (unpartitioned)")),
        _field("Run", _link(url, alert.run_id)),
    ]
    text = summary
    if alert.detail:
        text += f"\n```{_cut(alert.detail, MAX_DETAIL)}```"
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _cut(headline, 150)}},
        {"type": "section", "fields": fields},
        {"type": "section", "text": {"type": "mrkdwn", "text": _cut(text, MAX_TEXT)}},
        _context(settings),
    ]
    return redact_payload({"text": fallback, "blocks": blocks})  # type: ignore[no-any-return]


def _check_line(change: CheckChange) -> str:
    name = f"`{_escape(change.asset)}` · `{_escape(change.check)}`"
    if change.partition:
        name += f" ({_escape(change.partition)})"
    if change.failing:
        was = "newly failing" if change.previous == "PASSED" else f"was {change.previous}"
        line = f"*{change.state}* {name} — {was}"
        if change.money_at_stake_cents is not None:
            line += f"; money at stake {money(change.money_at_stake_cents)}"
    else:
        line = f"*RECOVERED* {name} — passes again (was {change.previous})"
    if change.description:
        line += f"\n>{_escape(_cut(change.description, MAX_DETAIL))}"
    return line


def _where(job: str, partition: str | None) -> str:
    return f"job {job}, partition {partition}" if partition else f"job {job}"


def _field(label: str, value: str) -> dict[str, str]:
    return {"type": "mrkdwn", "text": f"*{label}*\n{value}"}


def _link(url: str | None, run_id: str) -> str:
    return f"<{url}|{run_id[:8]}>" if url else f"`{run_id}`"


def _sections(lines: Sequence[str]) -> list[dict[str, Any]]:
    """Lines packed into sections under Slack's per-section limit."""
    sections: list[dict[str, Any]] = []
    current = ""
    for line in lines:
        line = _cut(line, MAX_TEXT)
        if current and len(current) + 1 + len(line) > MAX_TEXT:
            sections.append({"type": "section", "text": {"type": "mrkdwn", "text": current}})
            current = line
        else:
            current = f"{current}\n{line}" if current else line
    if current:
        sections.append({"type": "section", "text": {"type": "mrkdwn", "text": current}})
    return sections


def _context(settings: AlertSettings) -> dict[str, Any]:
    where = settings.dagster_base_url or f"set {BASE_URL_ENV} for links"
    return {
        "type": "context",
        "elements": [{"type": "mrkdwn", "text": f"thred-pipeline · Dagster {_escape(where)}"}],
    }


def _escape(text: str) -> str:
    """Slack mrkdwn control characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- secrets ---------------------------------------------------------------------------------


def known_secrets(env: Mapping[str, str] | None = None) -> set[str]:
    """Secret values in the environment: secret-named variables and passwords in URLs."""
    env = os.environ if env is None else env
    found: set[str] = set()
    for name, value in env.items():
        if not value:
            continue
        if _SECRET_NAME.search(name):
            found.add(value)
        if name in _URL_SETTINGS or name.endswith("_URL"):
            password = _url_password(value)
            if password:
                found.update({password, unquote(password)})
    return {s for s in found if len(s) >= _MIN_SECRET}


def _url_password(url: str) -> str | None:
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    netloc = parts.netloc
    if "@" not in netloc:
        return None
    userinfo = netloc.rsplit("@", 1)[0]
    return userinfo.split(":", 1)[1] if ":" in userinfo else None


def redact(text: str, secrets: Iterable[str] | None = None) -> str:
    values = known_secrets() if secrets is None else set(secrets)
    for secret in sorted(values, key=len, reverse=True):
        if secret and secret in text:
            text = text.replace(secret, REDACTED)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def redact_payload(value: Any, secrets: Iterable[str] | None = None) -> Any:
    """Every string of a JSON-like value, redacted."""
    values = known_secrets() if secrets is None else set(secrets)
    if isinstance(value, str):
        return redact(value, values)
    if isinstance(value, Mapping):
        return {k: redact_payload(v, values) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_payload(v, values) for v in value]
    return value


# --- delivery --------------------------------------------------------------------------------


def post(payload: Mapping[str, Any], settings: AlertSettings) -> None:
    """POST the message; retried a few times; raises ``AlertDeliveryError`` without the URL."""
    if not settings.webhook_url:
        raise AlertDeliveryError(f"{WEBHOOK_ENV} is not set")
    body = redact_payload(dict(payload))
    last = ""
    tried = 0
    for attempt in range(settings.attempts):
        if attempt:
            time.sleep(min(2.0**attempt, 10.0))
        tried += 1
        try:
            response = httpx.post(
                settings.webhook_url, json=body, timeout=settings.timeout_s, follow_redirects=False
            )
        except httpx.HTTPError as exc:  # the message of an httpx error names the URL
            last = f"{type(exc).__name__} (connection to the webhook failed)"
            continue
        if 200 <= response.status_code < 300:
            return
        last = f"HTTP {response.status_code}"
        if 400 <= response.status_code < 500 and response.status_code != 429:
            break  # the receiver refuses this message; sending it again cannot help
    raise AlertDeliveryError(
        f"the alert webhook ({WEBHOOK_ENV}) did not take the message after {tried} "
        f"attempt(s): {last}"
    )

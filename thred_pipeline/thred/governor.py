"""The rate governor: one token bucket per token scope (each business, and the partner).

Thred's quotas are per business (``../shared/thred-api.md`` section 4.6: undocumented, so
the client must find them), so the pace of one business must not be set by another, and
every request of a business -- record writes, page reads, its token request -- draws from
that business's bucket before it leaves (``sending.Sender`` is the only caller).

Why it is shaped like this:

- **Reservations, not polling.** ``reserve`` hands out the next free send slot (GCRA: a
  "theoretical arrival time" advanced by ``1/rate`` per request, ``burst`` slots of
  tolerance), so N waiting tasks sleep once each, in order, instead of waking together.
  It is plain arithmetic on a clock under a thread lock: no event loop is captured, so one
  governor serves every ``ThredClient`` of a process, whatever loop each runs on.
- **A 429 is about the whole business.** ``Retry-After`` pauses the bucket (every waiting
  task, not only the request that got it), and the rate is cut to ``decrease`` (90%) of the
  smaller of the current rate and the rate the server was accepting just before (its
  successes in the last ``window_s``); outstanding slots are void (``epoch``), so the tasks
  already queued at the old pace take new slots at the new one. One cut per congestion
  event: a 429 answering a request that left before the last cut only extends the pause; a
  second event within ``settle_s`` means the cut was not enough and cuts deeper. A 429 met
  by a bucket that was not busy says nothing about the limit (the quota was spent
  elsewhere): the rate is cut by ``decrease`` only and keeps probing (slow start).
- **Recovery is gradual and only when it is used.** Each ``window_s`` in which the bucket
  made a task wait, the rate grows by ``increase`` (2%) of itself, up to a step above the
  rate the server was accepting at the last cut until ``calm_s`` passes without a 429, then
  up to ``ceiling``: a
  server with a token bucket lets a client run a little over its limit for a while (its
  burst drains), so a fast climb would overshoot and pay a 429 and a pause per probe; a
  slow one probes again only every few tens of seconds. After ``calm_s`` without a 429 the
  climb is ``calm_increase`` (5%), so a limit found too low is not crept to for minutes.
  A bucket that is not the bottleneck does not grow; one idle for ``forget_s`` starts over.
- **An unknown limit is found, not guessed**: the first rate (``initial_rate``, above what
  one business needs at Thred's latency and the default concurrency) doubles each busy
  window until the first 429 (slow start), and the burst is small (``burst_s`` of the rate),
  so discovery costs about one 429 per business instead of one per concurrent request. The
  first estimate discounts the server's own burst (``_observed``), so it lands near the
  limit instead of above it.
- **A known limit** (``ceiling``) is the starting rate and the top of the recovery.
- **Requests in flight follow the API too** (``window``, AIMD as in TCP): a business starts
  with ``initial_window`` requests in flight and halves with each cut, so a 429 meets few
  requests already on their way; the engine's ``concurrency`` is only the most it may reach.
  Until its first cut and up to ``slow_start_window`` (10: what QuickBooks and Codat allow in
  flight, ``research/anchors.md``) the window gains one per success (slow start, as in TCP:
  it doubles each round trip, 2 -> 10 in three), then one per window's worth of successes:
  one more per round trip from 2 cost a latency-bound business eight round trips at the
  start of every run (issue 8's B1 timeline), while B3's 429s stayed the same.
- The one request that does not pass here is the resend of a request after a 401 (inside
  the ``httpx.Auth`` flow); it follows a token renewal, which did.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field

__all__ = ["BucketState", "RateGovernor", "RateLimits", "Ticket", "shared_governor"]

Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class RateLimits:
    """The governor's numbers (see the module docstring for what each one does).

    ``ceiling`` is a known limit (requests/s per scope); ``None`` means unknown: the bucket
    starts at ``initial_rate`` and finds the limit. ``burst`` is the number of requests
    that may leave back to back; ``None`` means one ``burst_s`` worth of the current rate.
    """

    ceiling: float | None = None
    burst: int | None = None
    initial_rate: float = 50.0
    min_rate: float = 0.5
    decrease: float = 0.9
    increase: float = 0.02
    window_s: float = 1.0
    settle_s: float = 10.0
    calm_s: float = 30.0
    calm_increase: float = 0.05
    server_burst_s: float = 1.0
    forget_s: float = 600.0
    burst_s: float = 0.1
    initial_window: float = 2.0
    slow_start_window: float = 10.0

    def __post_init__(self) -> None:
        if self.ceiling is not None and self.ceiling <= 0:
            raise ValueError("ceiling must be > 0 requests/s")
        if self.burst is not None and self.burst < 1:
            raise ValueError("burst must be >= 1")
        if not 0 < self.decrease < 1:
            raise ValueError("decrease must be between 0 and 1")

    def start_rate(self) -> float:
        return self.ceiling if self.ceiling is not None else self.initial_rate

    def top(self) -> float:
        return self.ceiling if self.ceiling is not None else math.inf


@dataclass(frozen=True, slots=True)
class Ticket:
    """A reserved send slot: sleep ``wait_s``, then check ``RateGovernor.valid``."""

    scope: Hashable
    wait_s: float
    epoch: int


@dataclass(slots=True)
class BucketState:
    """One scope's bucket; read it through ``RateGovernor.state`` (tests, metrics)."""

    rate: float
    tat: float = -math.inf
    paused_until: float = -math.inf
    epoch: int = 0
    slow_start: bool = True
    window_started: float = 0.0
    created: float = 0.0
    last_wait: float = -math.inf
    busy_since: float = math.inf
    accepted: int = 0
    accepted_when_busy: int = 0
    last_cut: float = -math.inf
    last_used: float = 0.0
    throttles: int = 0
    cuts: int = 0
    window: float = 2.0  # requests in flight it allows (``RateGovernor.window``)
    estimate: float = math.inf  # the rate the server accepted at the last cut
    successes: deque[float] = field(default_factory=deque, repr=False)

    def accepted_since(self, since: float) -> int:
        """Successes after ``since`` (older ones are dropped: they are never asked for again)."""
        while self.successes and self.successes[0] <= since:
            self.successes.popleft()
        return len(self.successes)


class RateGovernor:
    """Token buckets by scope, shared by every task and client given the same instance."""

    def __init__(self, limits: RateLimits, clock: Clock) -> None:
        self.limits = limits
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[Hashable, BucketState] = {}

    def __repr__(self) -> str:
        return f"RateGovernor({self.limits!r}, scopes={len(self._buckets)})"

    def state(self, scope: Hashable) -> BucketState:
        """The scope's bucket, created at the starting rate on first use.

        A bucket left idle for ``forget_s`` starts afresh: what it learned may be stale
        (another night, another quota) and a slow start finds it again in a few windows.
        """
        now = self._clock()
        bucket = self._buckets.get(scope)
        if bucket is None or now - bucket.last_used > self.limits.forget_s:
            rate, known = self.limits.start_rate(), self.limits.ceiling is not None
            bucket = BucketState(
                rate,
                window_started=now,
                created=now,
                slow_start=not known,
                window=self.limits.initial_window,
            )
            self._buckets[scope] = bucket
        bucket.last_used = now
        return bucket

    def _tolerance(self, bucket: BucketState) -> float:
        """How far ahead of the pace a slot may be (``burst - 1`` intervals)."""
        burst = self.limits.burst
        if burst is None:
            burst = max(1, math.floor(bucket.rate * self.limits.burst_s))
        return (burst - 1) / bucket.rate

    def reserve(self, scope: Hashable) -> Ticket:
        """The next free slot of ``scope`` (GCRA; a pause moves every slot past its end)."""
        now = self._clock()
        with self._lock:
            bucket = self.state(scope)
            start = max(now, bucket.paused_until)
            send_at = max(start, bucket.tat - self._tolerance(bucket))
            bucket.tat = max(bucket.tat, start) + 1.0 / bucket.rate
            if send_at > now:
                bucket.last_wait = now
                if bucket.busy_since == math.inf:
                    self._mark_busy(bucket, now)
            return Ticket(scope, send_at - now, bucket.epoch)

    def _mark_busy(self, bucket: BucketState, now: float) -> None:
        """Where discovery counts from: the bucket's start if it was busy within a window."""
        if now - bucket.created <= self.limits.window_s:
            bucket.busy_since, bucket.accepted_when_busy = bucket.created, 0
        else:
            bucket.busy_since, bucket.accepted_when_busy = now, bucket.accepted

    def valid(self, ticket: Ticket) -> bool:
        """False when the bucket was cut or paused since the slot was reserved: reserve again."""
        with self._lock:
            return self.state(ticket.scope).epoch == ticket.epoch

    def window(self, scope: Hashable) -> int:
        """How many requests of ``scope`` may be in flight at once (the engine's per-business
        gate reads it): one more per success until the first cut or ``slow_start_window``,
        then one more per window's worth of successes; halved with each cut.

        Pacing alone lets every request already sent when the first 429 comes back be refused
        too; bounding the requests in flight bounds that volley, and it still opens up fast
        where only latency limits a business (one more per round trip).
        """
        with self._lock:
            return max(1, math.floor(self.state(scope).window))

    def on_success(self, ticket: Ticket) -> None:
        """Count an accepted request; at a window's end, grow the rate if it was the limit."""
        now = self._clock()
        with self._lock:
            bucket = self.state(ticket.scope)
            bucket.successes.append(now)
            bucket.accepted += 1
            if bucket.cuts == 0 and bucket.window < self.limits.slow_start_window:
                bucket.window += 1.0  # slow start: doubles each round trip
            else:
                bucket.window += 1.0 / bucket.window  # one more per window's worth
            bucket.accepted_since(now - self.limits.window_s)
            if now - bucket.window_started < self.limits.window_s:
                return
            if bucket.last_wait >= bucket.window_started and now >= bucket.paused_until:
                factor = 2.0 if bucket.slow_start else 1.0 + self._increase(bucket, now)
                bucket.rate = max(bucket.rate, min(bucket.rate * factor, self._top(bucket, now)))
            bucket.window_started = now

    def _top(self, bucket: BucketState, now: float) -> float:
        """How high recovery may climb: a step (``calm_increase``) above the last cut's
        estimate of the limit until ``calm_s`` passes without a 429, then (probing again) up
        to ``ceiling``."""
        if now - bucket.last_cut < self.limits.calm_s:
            return min(self.limits.top(), bucket.estimate * (1 + self.limits.calm_increase))
        return self.limits.top()

    def _increase(self, bucket: BucketState, now: float) -> float:
        """``increase``; ``calm_increase`` once no 429 has come for ``calm_s`` (found low)."""
        limits = self.limits
        return limits.calm_increase if now - bucket.last_cut > limits.calm_s else limits.increase

    def on_throttled(self, ticket: Ticket, retry_after_s: float | None) -> None:
        """A 429: pause the scope for ``Retry-After`` and cut its rate once per event.

        A 429 answering a slot reserved before the last cut belongs to that same event: it
        only extends the pause.
        """
        now = self._clock()
        with self._lock:
            bucket = self.state(ticket.scope)
            bucket.throttles += 1
            pause_end = now + (retry_after_s or 0.0)
            cut = ticket.epoch == bucket.epoch
            if cut:
                self._cut(bucket, now)
            elif pause_end <= bucket.paused_until:
                return
            bucket.paused_until = max(bucket.paused_until, pause_end)
            # Every reserved slot is void; the bucket restarts empty when the pause ends
            # (slots one interval apart, no burst into a server that just said no).
            bucket.epoch += 1
            bucket.tat = bucket.paused_until + self._tolerance(bucket)

    def _observed(self, bucket: BucketState, now: float) -> float:
        """The rate the server was accepting from this bucket just before a 429.

        The first time, the server's burst is in it: a bucket that was full when we became
        busy let ``burst`` more through than its rate. Assuming the usual burst of one
        second's worth (``server_burst_s``, the sandbox's default), what it accepted since
        we became busy is spread over that much more time.
        """
        limits = self.limits
        recent = bucket.accepted_since(now - limits.window_s) / limits.window_s
        if not bucket.slow_start or bucket.busy_since == math.inf:
            return recent
        since_busy = bucket.accepted - bucket.accepted_when_busy
        return min(recent, since_busy / (now - bucket.busy_since + limits.server_burst_s))

    def _cut(self, bucket: BucketState, now: float) -> None:
        limits = self.limits
        observed = self._observed(bucket, now)
        busy = now - bucket.last_wait <= limits.window_s
        # The rate the server was accepting is the limit's estimate only when we were
        # sending as fast as the bucket let us; a quiet bucket keeps probing (slow start).
        basis = min(bucket.rate, observed) if busy and observed > 0 else bucket.rate
        factor = limits.decrease
        if now - bucket.last_cut < limits.settle_s:
            # Throttled again soon after a cut: that cut was not enough (the server's
            # burst made it accept faster than its limit for a while), so cut deeper.
            factor *= limits.decrease
        bucket.rate = max(limits.min_rate, basis * factor)
        bucket.estimate = max(bucket.rate, basis)
        bucket.window = max(1.0, bucket.window / 2)
        bucket.slow_start = not busy
        bucket.last_cut = bucket.window_started = now
        bucket.cuts += 1


_shared: dict[Hashable, RateGovernor] = {}
_shared_lock = threading.Lock()


def shared_governor(key: Hashable, limits: RateLimits) -> RateGovernor:
    """The process's governor for ``key`` (one Thred environment and partner) and ``limits``.

    Every ``ThredClient`` of the process that talks to the same quotas draws from the same
    buckets, so a client per entity or per step does not multiply the pressure, and what
    one client learned about a business's limit is not relearned (with 429s) by the next.
    """
    with _shared_lock:
        governor = _shared.get((key, limits))
        if governor is None:
            governor = _shared[(key, limits)] = RateGovernor(limits, time.monotonic)
        return governor

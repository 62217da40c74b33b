"""Limits that keep the server usable under abuse: a throttle per source address and caps on sessions.

Both are plain bookkeeping with an injectable clock, so they are tested without sockets or sleeping.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

Clock = Callable[[], float]


@dataclass
class _AddressState:
    tokens: float
    refilled_at: float
    pending: int = 0
    failures: deque[float] = field(default_factory=deque)


class AddressThrottle:
    """Decides, before authentication, whether a source address may open another connection.

    An address is refused while it has ``failure_limit`` failed sign-ins within ``failure_window`` seconds,
    when it opens connections faster than ``connect_rate`` per second (after a burst of ``connect_burst``),
    or when it already has ``max_pending_per_address`` connections that have not signed in. ``max_pending``
    caps connections that have not signed in across all addresses.
    """

    def __init__(
        self,
        *,
        failure_limit: int,
        failure_window: float,
        connect_burst: int,
        connect_rate: float,
        max_pending_per_address: int,
        max_pending: int,
        clock: Clock = time.monotonic,
    ) -> None:
        self._failure_limit = failure_limit
        self._failure_window = failure_window
        self._burst = float(connect_burst)
        self._rate = connect_rate
        self._max_pending_per_address = max_pending_per_address
        self._max_pending = max_pending
        self._clock = clock
        self._states: dict[str, _AddressState] = {}
        self._pending = 0

    def _state(self, address: str) -> _AddressState:
        now = self._clock()
        state = self._states.get(address)
        if state is None:
            state = self._states[address] = _AddressState(tokens=self._burst, refilled_at=now)
        state.tokens = min(self._burst, state.tokens + (now - state.refilled_at) * self._rate)
        state.refilled_at = now
        while state.failures and state.failures[0] <= now - self._failure_window:
            state.failures.popleft()
        return state

    def blocked_for(self, address: str) -> float:
        """Seconds until this address may try to sign in again (0 when it may)."""
        state = self._state(address)
        if len(state.failures) < self._failure_limit:
            return 0.0
        return max(0.0, state.failures[-self._failure_limit] + self._failure_window - self._clock())

    def admit(self, address: str) -> str | None:
        """Count a new connection from ``address``; the reason it is refused, or None when it is admitted."""
        self._forget_idle()
        wait = self.blocked_for(address)
        state = self._state(address)
        if wait > 0:
            minutes = max(1, math.ceil(wait / 60))
            return f"too many failed sign-ins from your address; try again in {minutes} minute(s)"
        if state.tokens < 1.0:
            return "too many connections from your address; wait a moment and try again"
        if state.pending >= self._max_pending_per_address or self._pending >= self._max_pending:
            return "too many connections are waiting to sign in; try again in a minute"
        state.tokens -= 1.0
        state.pending += 1
        self._pending += 1
        return None

    def release(self, address: str) -> None:
        """An admitted connection signed in or went away."""
        state = self._states.get(address)
        if state is not None and state.pending > 0:
            state.pending -= 1
            self._pending -= 1

    def failed(self, address: str) -> bool:
        """Count a failed sign-in; True when the address is now blocked."""
        self._state(address).failures.append(self._clock())
        return self.blocked_for(address) > 0

    def _forget_idle(self) -> None:
        """Drop addresses with nothing to remember, so the table does not grow without bound."""
        if len(self._states) < 1024:
            return
        for address in list(self._states):
            state = self._state(address)
            if not state.pending and not state.failures and state.tokens >= self._burst:
                del self._states[address]


class SessionLimits:
    """Caps on sessions: ``max_total`` in all, ``max_per_user`` for any one user."""

    def __init__(self, *, max_total: int, max_per_user: int) -> None:
        self._max_total = max_total
        self._max_per_user = max_per_user
        self._per_user: dict[int, int] = {}
        self.total = 0

    def open(self, user_id: int) -> str | None:
        """Count a new session; the reason it is refused, or None when it may start."""
        if self.total >= self._max_total:
            return f"the server already runs its maximum of {self._max_total} sessions; please try again later"
        if self._per_user.get(user_id, 0) >= self._max_per_user:
            return (
                f"you already have {self._max_per_user} open session(s), the most allowed per person; "
                "close one of them and try again"
            )
        self._per_user[user_id] = self._per_user.get(user_id, 0) + 1
        self.total += 1
        return None

    def close(self, user_id: int) -> None:
        """A session counted by ``open`` ended."""
        count = self._per_user.get(user_id, 0)
        if count <= 0:
            return
        self.total -= 1
        if count == 1:
            del self._per_user[user_id]
        else:
            self._per_user[user_id] = count - 1

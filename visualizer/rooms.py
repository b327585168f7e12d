"""Presenter rooms: a teacher's view state that follower pages poll. Pure Python, thread-safe, no gradio.

A room has a short public code (what students type or open as `/?follow=CODE`) and a separate secret teacher
token that only the teacher's session holds: reading needs the code, every write needs the token. Followers
poll `version(code)`, a dictionary lookup under a lock, and fetch the state only when the number changed.
Rooms expire after `idle_seconds` without a teacher write, and at most `max_rooms` are open at once.
"""

from __future__ import annotations

import hmac
import json
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

# No 0/O, 1/I/L: a code read off a projector is typed without confusion. 31 symbols ** 8 = 8.5e11 codes.
ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
CODE_LENGTH = 8
TOKEN_BYTES = 24  # the teacher token: 192 random bits, never shown to followers
MAX_STATE_BYTES = 16_384  # a view state is a few hundred bytes; this bounds a misbehaving client


class RoomAccessError(ValueError):
    """A write without the room's teacher token (or to a room that is gone)."""


@dataclass
class _Room:
    token: str
    version: int
    state: dict
    state_json: str  # encoded once per write, so a follower's fetch costs no encoding
    touched: float  # last teacher write (monotonic seconds)


def normalize_code(code: object) -> str:
    """A room code as stored: upper case, no spaces. ValueError names the field when it cannot be a code.

    >>> normalize_code(" k7qm-3pxa ")
    'K7QM3PXA'
    """
    if not isinstance(code, str):
        raise ValueError(f"follow: a room code is text, got {type(code).__name__}")
    cleaned = code.strip().upper().replace("-", "").replace(" ", "")
    if len(cleaned) != CODE_LENGTH or any(ch not in ALPHABET for ch in cleaned):
        raise ValueError(f"follow: {code[:40]!r} is not a room code ({CODE_LENGTH} letters and digits, "
                         "as shown on the teacher's screen)")
    return cleaned


def check_state(state: object) -> tuple[dict, str]:
    """A view state must be a JSON object with text keys and at most MAX_STATE_BYTES encoded."""
    if not isinstance(state, dict) or not all(isinstance(key, str) for key in state):
        raise ValueError(f"state: expected a JSON object with text keys, got {type(state).__name__}")
    try:
        encoded = json.dumps(state, ensure_ascii=False, allow_nan=False, separators=(",", ":"), sort_keys=True)
    except (TypeError, ValueError) as error:
        raise ValueError(f"state: not plain JSON data ({error})") from error
    if len(encoded.encode("utf-8")) > MAX_STATE_BYTES:
        raise ValueError(f"state: {len(encoded):,} bytes is over the {MAX_STATE_BYTES:,}-byte limit of a view state; "
                         "shorten the prompt")
    return json.loads(encoded), encoded  # a private copy: the caller's dict can change without touching the room


class RoomRegistry:
    """Open rooms, keyed by code. Every method takes the one lock; none of them does more than a dict lookup
    and, on writes, one small JSON encoding."""

    def __init__(self, max_rooms: int = 64, idle_seconds: float = 3 * 3600.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not isinstance(max_rooms, int) or max_rooms < 1:
            raise ValueError(f"max_rooms must be a whole number >= 1, got {max_rooms!r}")
        if not idle_seconds > 0:
            raise ValueError(f"idle_seconds must be > 0, got {idle_seconds!r}")
        self.max_rooms = max_rooms
        self.idle_seconds = float(idle_seconds)
        self._clock = clock
        self._rooms: dict[str, _Room] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            self._prune(self._clock())
            return len(self._rooms)

    def open(self, state: dict | None = None) -> tuple[str, str]:
        """A new room holding `state` at version 1 -> (code, teacher token)."""
        clean, encoded = check_state(state or {})
        with self._lock:
            now = self._clock()
            self._prune(now)
            if len(self._rooms) >= self.max_rooms:
                raise ValueError(f"{self.max_rooms} presenter rooms are open, the most this server keeps; close "
                                 f"one, or wait until one has been idle for {self.idle_seconds / 60:.0f} minutes")
            code = self._new_code()
            token = secrets.token_urlsafe(TOKEN_BYTES)
            self._rooms[code] = _Room(token, 1, clean, encoded, now)
            return code, token

    def publish(self, code: str, token: str, state: dict) -> int:
        """Replace the room's state (teacher only) -> its version; an unchanged state keeps the version, so
        a teacher page that publishes on a timer wakes no follower."""
        clean, encoded = check_state(state)
        with self._lock:
            room = self._owned(code, token)
            room.touched = self._clock()
            if encoded != room.state_json:
                room.version += 1
                room.state, room.state_json = clean, encoded
            return room.version

    def close(self, code: str, token: str) -> None:
        """End the room (teacher only); followers then see it gone."""
        with self._lock:
            self._owned(code, token)
            del self._rooms[normalize_code(code)]

    def version(self, code: str) -> int | None:
        """The room's state version, or None when there is no such room (the followers' hot path)."""
        with self._lock:
            room = self._live(code)
            return None if room is None else room.version

    def snapshot_json(self, code: str) -> tuple[int, str] | None:
        """(version, state as JSON text), or None when there is no such room."""
        with self._lock:
            room = self._live(code)
            return None if room is None else (room.version, room.state_json)

    def snapshot(self, code: str) -> tuple[int, dict] | None:
        """(version, a copy of the state), or None when there is no such room."""
        found = self.snapshot_json(code)
        return None if found is None else (found[0], json.loads(found[1]))

    # --- under the lock ---------------------------------------------------------------------------------------

    def _new_code(self) -> str:
        while True:  # a collision among <= max_rooms of 8.5e11 codes is rare; retry rather than refuse
            code = "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))
            if code not in self._rooms:
                return code

    def _live(self, code: str) -> _Room | None:
        try:
            key = normalize_code(code)
        except ValueError:
            return None
        room = self._rooms.get(key)
        if room is not None and self._clock() - room.touched > self.idle_seconds:
            del self._rooms[key]
            return None
        return room

    def _owned(self, code: str, token: str) -> _Room:
        room = self._live(code)
        # compare_digest: the time taken does not tell a guesser how much of the token was right
        if room is None or not isinstance(token, str) or not hmac.compare_digest(room.token, token):
            raise RoomAccessError("teacher token: this page does not hold the room's teacher token (or the room "
                                  "has expired); open a new room from the teacher's page")
        return room

    def _prune(self, now: float) -> None:
        for key in [k for k, room in self._rooms.items() if now - room.touched > self.idle_seconds]:
            del self._rooms[key]

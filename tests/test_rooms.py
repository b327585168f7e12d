"""The presenter room registry: codes, teacher-only writes, versions, expiry, bounds, threads."""

from __future__ import annotations

import threading

import pytest

from visualizer.rooms import ALPHABET, CODE_LENGTH, MAX_STATE_BYTES, RoomAccessError, RoomRegistry, normalize_code


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_code_is_short_unambiguous_and_token_is_separate():
    rooms = RoomRegistry()
    code, token = rooms.open({"tab": "attention"})
    assert len(code) == CODE_LENGTH and set(code) <= set(ALPHABET)
    assert not set("01OIL") & set(ALPHABET)
    assert code not in token and len(token) >= 32
    assert rooms.snapshot(code) == (1, {"tab": "attention"})


def test_codes_do_not_repeat():
    rooms = RoomRegistry(max_rooms=500)
    codes = {rooms.open()[0] for _ in range(500)}
    assert len(codes) == 500


def test_only_the_teacher_token_writes():
    rooms = RoomRegistry()
    code, token = rooms.open({"prompt": "a"})
    other_code, other_token = rooms.open()
    for bad in ("", "guess", other_token, None, token[:-1]):
        with pytest.raises(RoomAccessError, match="teacher token"):
            rooms.publish(code, bad, {"prompt": "hacked"})
        with pytest.raises(RoomAccessError):
            rooms.close(code, bad)
    assert rooms.snapshot(code) == (1, {"prompt": "a"})
    assert rooms.publish(code.lower(), token, {"prompt": "b"}) == 2  # codes are read case-insensitively
    assert rooms.snapshot(code) == (2, {"prompt": "b"})


def test_unchanged_state_keeps_the_version():
    rooms = RoomRegistry()
    code, token = rooms.open({"a": 1})
    assert rooms.publish(code, token, {"a": 1}) == 1
    assert rooms.publish(code, token, {"a": 2}) == 2
    assert rooms.version(code) == 2


def test_state_is_a_private_copy():
    rooms = RoomRegistry()
    state = {"controls": {"head": 1}}
    code, token = rooms.open(state)
    state["controls"]["head"] = 3
    assert rooms.snapshot(code)[1] == {"controls": {"head": 1}}
    rooms.snapshot(code)[1]["controls"]["head"] = 9
    assert rooms.snapshot(code)[1] == {"controls": {"head": 1}}


@pytest.mark.parametrize("state, message", [
    ([1, 2], "JSON object"), ({1: "x"}, "text keys"), ({"x": float("nan")}, "plain JSON"),
    ({"x": object()}, "plain JSON"), ({"prompt": "x" * (MAX_STATE_BYTES + 1)}, "limit"),
])
def test_bad_state_is_refused_with_the_field(state, message):
    rooms = RoomRegistry()
    code, token = rooms.open()
    with pytest.raises(ValueError, match=message):
        rooms.publish(code, token, state)


@pytest.mark.parametrize("code", ["", "ABC", "K7QM3PX0", "K7QM3PXAB", 12345678])
def test_bad_codes(code):
    with pytest.raises(ValueError, match="follow"):
        normalize_code(code)
    assert RoomRegistry().version(code) is None


def test_rooms_expire_after_idle_time_and_followers_do_not_keep_them_alive():
    clock = Clock()
    rooms = RoomRegistry(idle_seconds=60, clock=clock)
    code, token = rooms.open()
    clock.now += 50
    rooms.publish(code, token, {"a": 1})  # a teacher write resets the idle time
    for _ in range(10):
        clock.now += 10
        rooms.version(code)  # polling followers do not
    assert rooms.version(code) is None and len(rooms) == 0
    with pytest.raises(RoomAccessError):
        rooms.publish(code, token, {"a": 2})


def test_room_count_is_bounded_and_expired_rooms_free_places():
    clock = Clock()
    rooms = RoomRegistry(max_rooms=2, idle_seconds=60, clock=clock)
    rooms.open()
    code, token = rooms.open()
    with pytest.raises(ValueError, match="2 presenter rooms are open"):
        rooms.open()
    rooms.close(code, token)
    assert rooms.version(code) is None
    rooms.open()
    clock.now += 61
    rooms.open()
    assert len(rooms) == 1


@pytest.mark.parametrize("kwargs", [{"max_rooms": 0}, {"max_rooms": 1.5}, {"idle_seconds": 0}])
def test_bad_registry_settings(kwargs):
    with pytest.raises(ValueError):
        RoomRegistry(**kwargs)


def test_concurrent_writers_and_readers():
    rooms = RoomRegistry()
    code, token = rooms.open({"n": 0})
    seen: list[int] = []

    def write(offset: int) -> None:
        for i in range(200):
            rooms.publish(code, token, {"n": offset * 1000 + i + 1})

    def read() -> None:
        for _ in range(400):
            seen.append(rooms.version(code))

    threads = [threading.Thread(target=write, args=(k,)) for k in range(4)] + [threading.Thread(target=read)
                                                                               for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert rooms.version(code) == 1 + 4 * 200  # every write was a change, none was lost
    assert all(1 <= v <= 801 for v in seen)

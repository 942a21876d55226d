"""Pure rules: names, labels, durations, units, availability against an inventory."""

from __future__ import annotations

import pytest

from atoll.capacity import Inventory
from atoll.domain.billing import units_for
from atoll.domain.catalog import availability
from atoll.domain.validation import check_labels, check_name, parse_duration
from atoll.errors import Invalid
from atoll.runtime.inventory import detect, detect_gpus
from atoll.runtime.local.limits import detect_limits
from atoll.store.tables import Configuration


@pytest.mark.parametrize("name", ["a", "ab", "a-b", "a1", "x" * 63, "my-project-2"])
def test_valid_names(name: str) -> None:
    assert check_name(name) == name


@pytest.mark.parametrize("name", ["", "A", "1a", "a-", "-a", "a_b", "a.b", "x" * 64, "ä"])
def test_invalid_names(name: str) -> None:
    with pytest.raises(Invalid) as e:
        check_name(name)
    assert e.value.field == "name"


def test_labels() -> None:
    assert check_labels({"team": "ml", "env-1": ""}) == {"team": "ml", "env-1": ""}
    with pytest.raises(Invalid):
        check_labels({"Team": "x"})
    with pytest.raises(Invalid):
        check_labels({"team": "X"})


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("3h", 10800), ("10800s", 10800), ("10800", 10800), (1800, 1800), ("1h30m", 5400), ("90m", 5400)],
)
def test_durations(value: str | int, seconds: int) -> None:
    assert parse_duration(value, "f") == seconds


@pytest.mark.parametrize("value", ["", "soon", "-5s", 0, -1, "3d", True])
def test_bad_durations(value: object) -> None:
    with pytest.raises(Invalid):
        parse_duration(value, "f")  # type: ignore[arg-type]


def test_units_round_up_to_whole_seconds() -> None:
    # spec §7.1: g1.1 at 72 units/s for 1,400 ms is billed as 2 s = 144 units
    assert units_for(72, 1.4) == 144
    assert units_for(4, 2.0) == 8
    assert units_for(4, 0) == 0


def _cfg(**kw: object) -> Configuration:
    base = {
        "name": "t",
        "vcpu": 2.0,
        "ram_gb": 2.0,
        "gpu_count": 0,
        "gpu_type": "",
        "units_per_second": 2,
        "enabled": True,
    }
    return Configuration(**(base | kw))


def test_availability() -> None:
    inv = Inventory(cpus=4, memory_gb=8)
    assert availability(_cfg(), inv).available
    assert not availability(_cfg(vcpu=8.0), inv).available
    assert availability(_cfg(vcpu=8.0), inv, overcommit=2.0).available
    assert not availability(_cfg(ram_gb=16.0), inv).available
    assert "disabled" in availability(_cfg(enabled=False), inv).reason
    gpu = _cfg(gpu_count=2, gpu_type="A100")
    assert "no GPU detected" in availability(gpu, inv).reason
    gpus, source, _ = detect_gpus("NVIDIA A100-SXM4-80GB, NVIDIA A100-SXM4-80GB, Tesla T4")
    with_gpus = Inventory(cpus=4, memory_gb=8, gpus=gpus, gpu_source=source)
    assert availability(gpu, with_gpus).available
    assert not availability(_cfg(gpu_count=2, gpu_type="T4"), with_gpus).available


def test_detection_on_this_machine() -> None:
    inv = detect()
    assert inv.cpus >= 1 and inv.memory_gb > 0
    # No GPU is a valid answer; when there is none the reason says why.
    if not inv.gpus:
        assert inv.gpu_error
    limits = detect_limits()
    assert limits.mechanism in ("cgroup-v2", "cgroup-v1", "rlimit")

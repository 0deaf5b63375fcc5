"""The resource sampler: real psutil readings of this process and a child, a stand-in NVML and jax
device for what this CPU cannot produce, a thread that always stops, and the timeline drawn from
the samples."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from harness.evidence.timeline import resources_svg
from harness.evidence.verify import required_files
from harness.probes.resources import JaxProbe, NvmlProbe, ProcessProbe, ResourceSampler
from harness.record.resources import DeviceSample, EstimatedPeak, ResourceRecord, ResourceSample

MIB = 2**20


def sample(phase: str, at: float, rss: int, *devices: DeviceSample) -> ResourceSample:
    return ResourceSample("2026-01-01T00:00:00.000+00:00", at, phase, rss, 0, 0, 50.0, devices)


def test_the_process_probe_counts_a_child_and_its_memory() -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; x = bytearray(96 * 2**20); print(1, flush=True); "
         "time.sleep(60)"],
        stdout=subprocess.PIPE,
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == b"1"
        rss, children_rss, children, cpu = ProcessProbe().read()
    finally:
        child.kill()
        child.wait()
    assert children == 1
    assert children_rss >= 96 * MIB
    assert rss > 10 * MIB and cpu >= 0.0


class FakeNvml:
    """NVML as nvidia-ml-py gives it on a two-GPU machine whose second GPU reports no power."""

    class NVMLError(Exception):
        pass

    def __init__(self, fail_init: bool = False) -> None:
        self.fail_init, self.shut_down = fail_init, False

    def nvmlInit(self) -> None:
        if self.fail_init:
            raise self.NVMLError("Driver Not Loaded")

    def nvmlShutdown(self) -> None:
        self.shut_down = True

    def nvmlDeviceGetCount(self) -> int:
        return 2

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        return index

    def nvmlDeviceGetName(self, handle: int) -> str:
        return "NVIDIA H100 80GB HBM3"

    def nvmlDeviceGetMemoryInfo(self, handle: int) -> Any:
        return SimpleNamespace(used=(handle + 1) * 10 * 2**30, total=80 * 2**30)

    def nvmlDeviceGetUtilizationRates(self, handle: int) -> Any:
        return SimpleNamespace(gpu=97)

    def nvmlDeviceGetPowerUsage(self, handle: int) -> int:
        if handle == 1:
            raise self.NVMLError("Not Supported")
        return 612_500  # milliwatts


def test_nvml_gives_memory_utilisation_and_power_of_each_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    probe = NvmlProbe(FakeNvml())
    first, second = probe.read()
    assert probe.state == "sampled: memory, utilisation and power of 2 GPU(s) (NVML)"
    assert first == DeviceSample("cuda:0 (NVIDIA H100 80GB HBM3)", 10 * 2**30, 80 * 2**30, None, 97.0, 612.5)
    assert (second.used_bytes, second.power_w) == (20 * 2**30, None)


def test_nvml_reads_only_the_gpus_cuda_visible_devices_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    assert [d.name for d in NvmlProbe(FakeNvml()).read()] == ["cuda:1 (NVIDIA H100 80GB HBM3)"]


def test_nvml_that_cannot_start_is_recorded_with_its_reason() -> None:
    nvml = FakeNvml(fail_init=True)
    probe = NvmlProbe(nvml)
    assert probe.state == "not available: NVML could not start (NVMLError: Driver Not Loaded)"
    assert probe.read() == [] and not nvml.shut_down


def test_on_this_machine_nvml_is_sampled_or_says_why_not() -> None:
    probe = NvmlProbe()
    try:
        if probe.handles:
            assert probe.state.startswith("sampled: ") and probe.read()[0].used_bytes > 0
        else:
            assert probe.state.startswith("not available: NVML ")
            assert "(" in probe.state and probe.read() == []
    finally:
        probe.close()


class FakeTpu:
    platform, id, device_kind = "tpu", 0, "TPU v5 lite"

    def memory_stats(self) -> dict[str, int]:
        return {"bytes_in_use": 5 * 2**30, "peak_bytes_in_use": 9 * 2**30, "bytes_limit": 16 * 2**30}


def test_jax_memory_stats_are_read_in_a_jax_run_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "jax", SimpleNamespace(local_devices=lambda: [FakeTpu()]))
    torch_run = JaxProbe("torch")
    assert torch_run.read() == []
    assert torch_run.state == "not sampled: a torch run does not use jax"
    jax_run = JaxProbe("jax")
    assert jax_run.read() == [
        DeviceSample("tpu:0 (TPU v5 lite)", 5 * 2**30, 16 * 2**30, 9 * 2**30)
    ]
    assert jax_run.state == "sampled: memory_stats() of 1 jax device(s)"


def test_jax_is_never_imported_to_be_sampled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "jax", raising=False)
    probe = JaxProbe("jax")
    assert probe.read() == [] and "jax" not in sys.modules
    assert probe.state == "not available: jax was not imported by this run's backend yet"


class Broken:
    name, state = "broken", "sampled"

    def read(self) -> list[DeviceSample]:
        raise RuntimeError("device lost")

    def close(self) -> None:
        pass


def test_the_sampler_samples_each_interval_and_its_thread_ends_with_the_phase() -> None:
    seen: list[ResourceSample] = []
    broken = Broken()
    sampler = ResourceSampler(0.05, seen.append, [broken])
    sampler.start("train")
    # Waited for rather than slept for: a loaded machine may run the thread late, never not at all.
    deadline = time.monotonic() + 30
    while len(seen) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    sampler.stop()
    count = len(seen)
    time.sleep(0.15)
    assert len(seen) == count >= 4  # one at the start, several on the way, one at the end
    assert {s.phase for s in seen} == {"train"}
    assert [s.elapsed_s for s in seen] == sorted(s.elapsed_s for s in seen)
    assert not any(t.name.startswith("resources ") for t in threading.enumerate())
    assert sampler.states["broken"] == (
        "not available: it failed while sampling (RuntimeError: device lost)"
    )


def test_a_sink_that_cannot_write_leaves_the_phase_running(tmp_path: Path) -> None:
    def full_disk(_: ResourceSample) -> None:
        raise OSError(28, "No space left on device")

    sampler = ResourceSampler(0.05, full_disk, [])
    sampler.start("train")
    sampler.close()
    assert sampler.states["process"].startswith("not all written: OSError: [Errno 28] No space")


def test_peaks_name_their_phase_and_prefer_the_allocators_high_water_mark() -> None:
    tpu = "tpu:0 (TPU v5 lite)"
    record = ResourceRecord(2.0, [
        sample("preflight", 0.0, 100 * MIB, DeviceSample(tpu, 1 * 2**30, peak_bytes=1 * 2**30)),
        sample("train", 2.0, 900 * MIB, DeviceSample(tpu, 5 * 2**30, peak_bytes=9 * 2**30)),
        sample("train", 4.0, 800 * MIB, DeviceSample(tpu, 4 * 2**30, peak_bytes=9 * 2**30)),
        sample("evaluate", 6.0, 700 * MIB),
    ])
    rss = record.peak_rss()
    assert rss is not None and (rss.bytes, rss.phase) == (900 * MIB, "train")
    assert record.device_peaks()[tpu].facts() == {
        "bytes": 9 * 2**30, "gib": 9.0, "phase": "train", "source": "peak_bytes_in_use"
    }
    assert [(s.phase, s.start_s, s.end_s) for s in record.spans] == [
        ("preflight", 0.0, 0.0), ("train", 2.0, 4.0), ("evaluate", 6.0, 6.0)
    ]


def test_the_timeline_is_svg_with_phases_estimate_and_peaks_kept() -> None:
    samples = [sample("train", 200.0 + i, (100 + (i == 4321) * 900) * MIB) for i in range(5000)]
    record = ResourceRecord(1.0, [sample("preflight", 0.0, 50 * MIB), *samples])
    estimate = EstimatedPeak(2 * 2**30, "one training process", (("weights", 2**30),), "fits")
    svg = resources_svg(record, estimate)
    root = ElementTree.fromstring(svg)
    texts = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert "train" in texts and "preflight" in texts
    assert "memory guard estimate, one training process: 2.00 GiB" in texts
    rss_line = next(root.iter("{http://www.w3.org/2000/svg}polyline")).get("points", "")
    points = [tuple(map(float, p.split(","))) for p in rss_line.split()]
    assert len(points) <= 1001
    heights = sorted(y for _, y in points)  # the one 1000 MiB sample is kept, the rest lie low
    assert heights[0] < 200 < heights[1]


def test_no_sample_draws_a_line_saying_so() -> None:
    assert "No sample yet" in resources_svg(ResourceRecord(2.0), None)


def test_verify_requires_the_samples_and_their_plot_once_a_phase_ran() -> None:
    def phases(status: str) -> dict[str, Any]:
        outcome = {"status": status, "cause": "x", "reason": "x", "duration_s": 0.0}
        return {"milestone": "smoke", "phases": {"preflight": outcome}}

    assert "resources.jsonl" not in required_files(phases("not run"))
    for status in ("passed", "failed", "skipped"):
        assert {"resources.jsonl", "resources.svg"} <= set(required_files(phases(status)))

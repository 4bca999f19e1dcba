"""The GPU-busy arithmetic of ``tools/bench_profile.py``, on events shaped as the profiler's."""

from dataclasses import dataclass

from torch.profiler import DeviceType

from tools.bench_profile import busy_and_gaps, is_fp8_gemm, is_gemm, merged


@dataclass
class Event:
    kind: DeviceType
    start: int
    end: int
    label: str = "kernel"

    def device_type(self) -> DeviceType:
        return self.kind

    def start_ns(self) -> int:
        return self.start

    def end_ns(self) -> int:
        return self.end

    def name(self) -> str:
        return self.label

    def is_user_annotation(self) -> bool:
        return self.label.startswith("annotation")


def test_overlapping_kernels_count_once():
    assert merged([(5, 9), (0, 4), (3, 6), (12, 13), (13, 15)]) == [(0, 9), (12, 15)]


def test_busy_share_and_gaps_are_read_inside_the_period_with_the_host_ops_that_began_in_them():
    gpu = DeviceType.CUDA
    events = [
        Event(gpu, 0, 400_000),  # starts before the period: only its part inside counts
        Event(gpu, 300_000, 500_000),
        Event(gpu, 600_000, 610_000),  # 100 us gap before it
        Event(gpu, 615_000, 1_000_000),  # 5 us gap before it: launch latency, not listed
        Event(gpu, 1_050_000, 2_000_000),  # ends after the period
        Event(gpu, 100_000, 1_100_000, "annotation: a range, not GPU work"),
        Event(DeviceType.CPU, 520_000, 530_000, "aten::item"),
        Event(DeviceType.CPU, 1_010_000, 1_020_000, "aten::copy_"),
    ]
    report = busy_and_gaps(events, (100_000, 1_100_000))
    assert report["period_ms"] == 1.0
    assert report["gpu_busy_ms"] == (400_000 + 10_000 + 385_000 + 50_000) / 1e6
    assert report["idle_gaps_over_20us"] == 2
    assert report["idle_in_gaps_ms"] == 0.15
    assert [g["ms"] for g in report["largest_gaps"]] == [0.1, 0.05]
    assert report["largest_gaps"][0]["host_ops"] == {"aten::item": 1}
    assert report["largest_gaps"][1]["host_ops"] == {"aten::copy_": 1}


def test_gemm_kernels_are_told_apart_by_their_input_type():
    assert is_fp8_gemm("nvjet_qqtst_128x256_64x4_1x2_h_bz_coopA_NTN")
    assert is_gemm("nvjet_tst_192x192_64x3_2x1_v_bz_coopB_NNT") and not is_fp8_gemm("nvjet_tst_192x192_64x3")
    assert not is_gemm("triton_red_fused_add_mul_native_layer_norm_0")
    assert not is_gemm("triton_red_fused__fused_rms_norm__scaled_mm__to_copy_abs_add_amax_clamp_div_mul_slice")

"""tools/cuda_step_check.py and tools/gpu_probe.py run on the CPU (their GPU runs are the lead's):
the check passes for two equal devices and fails when a code differs; the probe reports its figures."""

import importlib.util
import json
import pathlib
import sys

import numpy as np
import pytest

pytest.importorskip("torch")

pytestmark = pytest.mark.torch
ROOT = pathlib.Path(__file__).resolve().parents[1]


def _tool(name):
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / f"{name}.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
    finally:
        sys.path.remove(str(ROOT / "tools"))
    return mod


@pytest.mark.slow
def test_cuda_step_check_passes_on_equal_devices_and_fails_on_one_differing_error_code(monkeypatch, capsys):
    check = _tool("cuda_step_check")
    args = ["--devices", "cpu,cpu", "--batch", "4", "--size", "8"]
    assert check.main(args) == 0
    out = capsys.readouterr().out
    assert "each of 19 quantized layers alone" in out and "0 of 62 parameters differ" in out and out.endswith("OK\n")
    real = check.layer_alone
    calls = []

    def one_bit_off(device, *a):
        seen = real(device, *a)
        calls.append(device)
        if len(calls) == 1:                                    # the first device, first layer
            seen["errors"] = seen["errors"].copy()
            seen["errors"].reshape(-1)[:1].view(np.uint32)[0] ^= 1
        return seen
    monkeypatch.setattr(check, "layer_alone", one_bit_off)
    assert check.main(args) == 1
    out = capsys.readouterr().out
    assert "errors        1 layers differ (1 of " in out and out.endswith("FAILED\n")


def test_gpu_probe_on_the_cpu(tmp_path, capsys):
    probe = _tool("gpu_probe")
    path = tmp_path / "probe.json"
    assert probe.main(["--device", "cpu", "--recipes", "fp32,paper-e5m2", "--widths", "2", "--batch-size", "4",
                       "--steps", "1", "--warmup", "0", "--json", str(path)]) == 0
    res = json.loads(path.read_text())
    assert [(r["recipe"], r["width"]) for r in res] == [("fp32", 2), ("paper-e5m2", 2)]
    assert res[0]["rounding_calls_per_step"] == 0 and res[1]["rounding_calls_per_step"] > 100
    assert 0 < res[1]["rounding_share"] < 1 and res[1]["ms_per_step"] > 0
    assert "paper-e5m2" in capsys.readouterr().out
    assert probe.main(["--device", "cpu", "--recipes", "nope"]) == 2
    assert "unknown recipe 'nope'" in capsys.readouterr().err
    assert probe.main(["--device", "cpu", "--steps", "0"]) == 2

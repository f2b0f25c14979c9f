"""Importing nrf holds torch's CPU kernels to AVX2 (nrf.hold_cpu_kernels), so a CPU
training gives the same bits on an AVX-512 machine as on an AVX2 one."""

import os
import subprocess
import sys

import pytest

from nrf import cpu_vendor, hold_cpu_kernels, kernel_settings

EVERY_SETTING = ("ONEDNN_MAX_CPU_ISA", "MKL_CBWR")

# a few AdamW steps of a convolution and an MLP, hashed: one rounding apart in
# any convolution or matrix product changes the hash
TRAIN = """
import hashlib, sys
if "nrf" in sys.argv[1:]:
    import nrf  # noqa: F401
import torch
torch.manual_seed(0); torch.set_num_threads(1)
nn = torch.nn
net = nn.Sequential(nn.Conv2d(3, 8, 5, stride=2), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 14 * 14, 128), nn.ReLU(),
                    nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, 1))
opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
x, y = torch.randn(64, 3, 32, 32), torch.randn(64, 1)
for _ in range(10):
    loss = torch.nn.functional.mse_loss(net(x), y); opt.zero_grad(); loss.backward(); opt.step()
print(hashlib.sha256(b"".join(p.detach().numpy().tobytes() for p in net.parameters())).hexdigest())
"""


def train(*args, **env):
    clean = {k: v for k, v in os.environ.items() if k not in EVERY_SETTING}
    out = subprocess.run([sys.executable, "-c", TRAIN, *args], env={**clean, **env}, check=True,
                         capture_output=True, text=True)
    return out.stdout.strip()


def test_importing_nrf_gives_the_training_that_the_settings_made_at_start_give():
    # on an AVX-512 CPU the hash differs from the libraries' own choice (measured on this
    # project's AMD machines), so a setting that came after the first convolution fails here
    assert train("nrf") == train(**kernel_settings(cpu_vendor()))


@pytest.mark.parametrize("vendor, expected", [
    ("AuthenticAMD", {"ONEDNN_MAX_CPU_ISA": "AVX2"}),
    ("GenuineIntel", {"ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_CBWR": "AVX2"}),
    ("", {"ONEDNN_MAX_CPU_ISA": "AVX2"}),
])
def test_mkl_is_held_on_intel_only(vendor, expected):
    assert kernel_settings(vendor) == expected


def test_the_vendor_is_read_from_cpuinfo(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nvendor_id\t: GenuineIntel\ncpu family\t: 6\n")
    assert cpu_vendor(str(info)) == "GenuineIntel"
    assert cpu_vendor(str(tmp_path / "missing")) == ""


def test_a_users_own_setting_wins(monkeypatch):
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "DEFAULT")
    monkeypatch.delenv("MKL_CBWR", raising=False)
    assert hold_cpu_kernels("GenuineIntel") == {"ONEDNN_MAX_CPU_ISA": "DEFAULT", "MKL_CBWR": "AVX2"}

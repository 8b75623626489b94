"""convert(model, "int4") recognises layers loaded from GPTQ and AWQ checkpoints by
their tensors (whatever library defined them) and imports their 4-bit weights."""
import torch
from torch import nn

import bigaccel
from bigaccel.nn import Int4Linear
from bigaccel.recipes import int4_checkpoint_format
from tests.nn.test_int4_import import _codes, _pack_words

K, N, G = 128, 16, 32


class GPTQLayer(nn.Module):
    """What AutoGPTQ's QuantLinear holds (v1 format: zero points stored minus one)."""

    def __init__(self, seed):
        super().__init__()
        q, z = _codes(seed, (K, N)), _codes(seed + 1, (K // G, N)).clamp(1, 15)
        self.bits, self.group_size = 4, G
        self.register_buffer("qweight", _pack_words([q[i::8] for i in range(8)]))
        self.register_buffer("qzeros", _pack_words([(z - 1)[:, i::8] for i in range(8)]))
        self.register_buffer("scales", (torch.rand(K // G, N, generator=torch.Generator().manual_seed(seed)) + 0.1).half())
        self.register_buffer("g_idx", (torch.arange(K) // G).to(torch.int32))
        self.register_buffer("bias", torch.randn(N).half())
        self.dense = ((q - z.repeat_interleave(G, 0)).float() * self.scales.float().repeat_interleave(G, 0)).t()

    def forward(self, x):
        return x @ self.dense.t() + self.bias.float()


class AWQLayer(nn.Module):
    """What AutoAWQ's WQLinear_GEMM holds (nibbles in the order 0, 2, 4, 6, 1, 3, 5, 7)."""

    def __init__(self, seed):
        super().__init__()
        q, z = _codes(seed, (K, N)), _codes(seed + 1, (K // G, N))
        order = [0, 2, 4, 6, 1, 3, 5, 7]
        self.w_bit, self.group_size = 4, G
        self.register_buffer("qweight", _pack_words([q[:, c::8] for c in order]))
        self.register_buffer("qzeros", _pack_words([z[:, c::8] for c in order]))
        self.register_buffer("scales", (torch.rand(K // G, N, generator=torch.Generator().manual_seed(seed)) + 0.1).half())
        self.bias = None
        self.dense = ((q - z.repeat_interleave(G, 0)).float() * self.scales.float().repeat_interleave(G, 0)).t()

    def forward(self, x):
        return x @ self.dense.t()


def test_convert_imports_gptq_and_awq_layers():
    model = nn.Sequential(GPTQLayer(0), nn.ReLU(), nn.Linear(N, K), AWQLayer(10))
    assert [int4_checkpoint_format(m) for m in model] == ["gptq", None, None, "awq"]
    x = torch.randn(5, K)
    with torch.no_grad():
        expected = model(x)
    report = bigaccel.convert(model, bigaccel.recipes.Int4Config(min_weight_numel=0))
    assert isinstance(model[0], Int4Linear) and isinstance(model[3], Int4Linear)
    assert isinstance(model[2], nn.Linear)  # K=16 is not a multiple of 128: skipped with a reason
    notes = " ".join(str(layer.note) for layer in report.layers)
    assert "GPTQ" in notes and "AWQ" in notes
    with torch.no_grad():
        torch.testing.assert_close(model(x), expected, rtol=1e-4, atol=1e-3)

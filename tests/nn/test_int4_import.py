"""Int4Linear.from_gptq / from_awq against dequantizations written here from the formats'
published descriptions (AutoGPTQ's and AutoAWQ's packers), on tensors built in the test."""
import pytest
import torch

from bigaccel.nn import Int4Linear
from tests.conftest import int16_activation_error

K, N, G = 128, 16, 32


def _pack_words(nibbles_by_position):
    """list of 8 int tensors (0..15), position i -> bits 4i..4i+3 of an int32."""
    word = torch.zeros_like(nibbles_by_position[0], dtype=torch.int64)
    for i, nib in enumerate(nibbles_by_position):
        word |= nib.to(torch.int64) << (4 * i)
    return torch.where(word >= 2**31, word - 2**32, word).to(torch.int32)  # reinterpret as int32


def _codes(seed, shape):
    return torch.randint(0, 16, shape, generator=torch.Generator().manual_seed(seed))


def test_gptq_matches_the_published_dequantization():
    q = _codes(0, (K, N))  # code of (k, n)
    z_true = _codes(1, (K // G, N)).clamp(1, 15)  # v1 can only store zero points >= 1
    scales = (torch.rand(K // G, N, generator=torch.Generator().manual_seed(2)) + 0.1).half()
    qweight = _pack_words([q[i::8] for i in range(8)])  # [K/8, N]: k = 8r + i at nibble i
    qzeros = _pack_words([(z_true - 1)[:, i::8] for i in range(8)])  # stored minus one, packed along N
    g_idx = torch.arange(K) // G
    expected = torch.empty(N, K)
    for k in range(K):  # w[n, k] = (code - (stored zero + 1)) * scale, group g_idx[k]
        g = int(g_idx[k])
        stored = (qzeros[g].to(torch.int64)[:, None] >> (4 * torch.arange(8))) & 0xF  # [N/8, 8]
        zero = stored.reshape(N) + 1
        code = (qweight[k // 8].to(torch.int64) >> (4 * (k % 8))) & 0xF
        expected[:, k] = (code - zero).float() * scales[g].float()
    assert torch.equal(expected, ((q - z_true.repeat_interleave(G, 0)).float() * scales.float().repeat_interleave(G, 0)).t())
    layer = Int4Linear.from_gptq(qweight, qzeros, scales, g_idx, group_size=G)
    torch.testing.assert_close(layer.dequantized_weight(), expected, rtol=0, atol=0)
    assert layer.input_perm is None
    x = torch.randn(3, K)
    torch.testing.assert_close(layer(x), x @ expected.t(), rtol=1e-5, atol=1e-4)


def test_gptq_act_order_permutes_k():
    q = _codes(3, (K, N))
    z = _codes(4, (K // G, N)).clamp(1, 15)
    scales = (torch.rand(K // G, N, generator=torch.Generator().manual_seed(5)) + 0.1).half()
    order = torch.randperm(K, generator=torch.Generator().manual_seed(6))  # GPTQ's processing order
    g_idx = torch.empty(K, dtype=torch.int32)
    g_idx[order] = (torch.arange(K) // G).to(torch.int32)  # the i-th processed k is in group i // G
    qweight = _pack_words([q[i::8] for i in range(8)])
    qzeros = _pack_words([(z - 1)[:, i::8] for i in range(8)])
    expected = ((q - z[g_idx.long()]).float() * scales.float()[g_idx.long()]).t()  # per k: its group's scale
    layer = Int4Linear.from_gptq(qweight, qzeros, scales, g_idx, group_size=G)
    assert layer.input_perm is not None and "act_order=True" in repr(layer)
    torch.testing.assert_close(layer.dequantized_weight(), expected, rtol=0, atol=0)
    x = torch.randn(2, 3, K, requires_grad=True)
    out = layer(x)
    torch.testing.assert_close(out, x.detach() @ expected.t(), rtol=1e-5, atol=1e-4)
    out.sum().backward()
    torch.testing.assert_close(x.grad, expected.sum(0).expand(2, 3, K), rtol=1e-5, atol=1e-4)
    fresh = Int4Linear(K, N, bias=False, group_size=G, act_order=True)
    fresh.load_state_dict(layer.state_dict())
    torch.testing.assert_close(fresh(x.detach()), out.detach(), rtol=0, atol=0)


def test_awq_matches_the_published_dequantization():
    q = _codes(7, (K, N))
    z = _codes(8, (K // G, N))
    scales = (torch.rand(K // G, N, generator=torch.Generator().manual_seed(9)) + 0.1).half()
    packer_order = [0, 2, 4, 6, 1, 3, 5, 7]  # AutoAWQ: nibble i holds column 8j + packer_order[i]
    qweight = _pack_words([q[:, c::8] for c in packer_order])  # [K, N/8]
    qzeros = _pack_words([z[:, c::8] for c in packer_order])  # [K/G, N/8]
    expected = torch.empty(N, K)
    for n in range(N):  # unpack by reading nibble packer_order.index(n % 8) of word n // 8
        pos = packer_order.index(n % 8)
        code = (qweight[:, n // 8].to(torch.int64) >> (4 * pos)) & 0xF
        zero = (qzeros[:, n // 8].to(torch.int64) >> (4 * pos)) & 0xF
        expected[n] = (code - zero.repeat_interleave(G)).float() * scales[:, n].float().repeat_interleave(G)
    layer = Int4Linear.from_awq(qweight, qzeros, scales, bias=torch.ones(N), group_size=G)
    torch.testing.assert_close(layer.dequantized_weight(), expected, rtol=0, atol=0)
    x = torch.randn(4, K).bfloat16()
    ref = x.double() @ expected.double().t() + 1
    # One bf16 rounding of the output (2 ulps allowed), and whichever the CPU's path adds: the
    # weight rounded to bf16 (AVX512_BF16 CPUs, as a bf16 nn.Linear), or x held as int16 (AVX2).
    bound = (2 * torch.finfo(torch.bfloat16).eps * ref.abs()
             + x.double().abs() @ (expected.double() - expected.bfloat16().double()).abs().t()
             + int16_activation_error(("cpu", "cpu", "avx2"), x, expected) + 1e-6)
    assert torch.all((layer(x).double() - ref).abs() <= bound)


def test_import_errors_are_clear():
    with pytest.raises(ValueError, match="qzeros must have shape"):
        Int4Linear.from_gptq(torch.zeros(K // 8, N, dtype=torch.int32), torch.zeros(1, 1, dtype=torch.int32),
                             torch.ones(K // G, N), group_size=G)
    with pytest.raises(ValueError, match="exactly group_size=32"):
        Int4Linear.from_gptq(torch.zeros(K // 8, N, dtype=torch.int32), torch.zeros(K // G, N // 8, dtype=torch.int32),
                             torch.ones(K // G, N), torch.zeros(K, dtype=torch.int32), group_size=G)

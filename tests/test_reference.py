"""The reference formats: round trips, documented layouts, and error bounds."""
import pytest
import torch
import torch.nn.functional as F

from bigaccel import reference as ref


def _weight(n, k, seed=0, dtype=torch.float32):
    return torch.randn(n, k, generator=torch.Generator().manual_seed(seed)).to(dtype)


def test_int8_per_channel_round_trip_and_bound():
    w = _weight(33, 129)
    q, scale = ref.quantize_per_channel_int8(w)
    assert q.dtype == torch.int8 and scale.shape == (33,)
    err = (ref.dequantize_int8_rowwise(q, scale) - w).abs()
    assert torch.all(err <= scale[:, None] / 2 * (1 + 1e-6))
    assert torch.equal(q.abs().amax(-1), torch.full((33,), 127, dtype=torch.int8))


def test_int4_pack_layout_is_low_nibble_first():
    codes = torch.tensor([[1, 2, 15, 0]], dtype=torch.uint8)
    packed = ref.pack_int4(codes)
    assert packed.tolist() == [[0x21, 0x0F]]
    assert torch.equal(ref.unpack_int4(packed), codes)


def test_int4_pack_rejects_bad_codes():
    with pytest.raises(ValueError, match="even last dimension"):
        ref.pack_int4(torch.zeros(2, 3, dtype=torch.uint8))
    with pytest.raises(ValueError, match="0..15"):
        ref.pack_int4(torch.full((1, 2), 16, dtype=torch.uint8))


@pytest.mark.parametrize("group_size", ref.INT4_GROUP_SIZES)
@pytest.mark.parametrize("zero_point", [True, False])
def test_int4_quantize_round_trip(group_size, zero_point):
    w = _weight(7, 4 * group_size, seed=group_size)
    packed, scales, zeros = ref.quantize_int4(w, group_size, zero_point)
    assert packed.shape == (7, 2 * group_size) and packed.dtype == torch.uint8
    assert scales.shape == (7, 4) and scales.dtype == torch.float32
    assert (zeros is None) == (not zero_point)
    deq = ref.dequantize_int4(packed, scales, zeros, group_size)
    # Round to nearest: at most half a step, except codes clamped at the ends of the range.
    err = (deq - w).abs().reshape(7, 4, group_size)
    assert torch.all(err <= scales[..., None] * (0.5 + 1e-5))
    # Re-quantizing the dequantized weight is a fixed point.
    again = ref.quantize_int4(deq, group_size, zero_point)
    assert torch.equal(again[0], packed)


def test_int4_zero_point_represents_zero_exactly():
    w = torch.linspace(0.1, 3.0, 32).reshape(1, 32)  # all positive: lo is clamped to 0
    packed, scales, zeros = ref.quantize_int4(w, 32, True)
    assert zeros.item() == 0
    w[0, 5] = 0.0
    deq = ref.dequantize_int4(*ref.quantize_int4(w, 32, True), 32)
    assert deq[0, 5].item() == 0.0


@pytest.mark.parametrize("k, group_size, match", [(100, 32, "not a multiple of group_size"), (128, 48, "one of")])
def test_int4_bad_group_size(k, group_size, match):
    with pytest.raises(ValueError, match=match):
        ref.quantize_int4(_weight(4, k), group_size)


def _two_four(n, k, seed=0):
    w = _weight(n, k, seed)
    groups = w.reshape(n, k // 4, 4)
    keep = groups.abs().topk(2, dim=-1).indices
    mask = torch.zeros_like(groups, dtype=torch.bool).scatter_(-1, keep, True)
    return (groups * mask).reshape(n, k)


@pytest.mark.parametrize("k", [4, 8, 12, 100])
def test_2_4_round_trip(k):
    w = _two_four(5, k)
    w[0, :4] = 0  # a group with no non-zeros
    w[1, :4] = torch.tensor([0.0, 0.0, 3.0, 0.0])  # one non-zero
    values, meta = ref.compress_2_4(w)
    assert values.shape == (5, k // 2) and meta.shape == (5, (k + 7) // 8) and meta.dtype == torch.uint8
    assert torch.equal(ref.decompress_2_4(values, meta, k), w)


def test_2_4_metadata_layout():
    w = torch.tensor([[0.0, 5.0, 0.0, 6.0, 7.0, 0.0, 8.0, 0.0]])
    values, meta = ref.compress_2_4(w)
    assert values.tolist() == [[5.0, 6.0, 7.0, 8.0]]
    # group 0 keeps (1, 3): nibble 0b1101; group 1 keeps (0, 2): nibble 0b1000
    assert meta.tolist() == [[0b1000_1101]]


def test_2_4_rejects_dense():
    assert not ref.is_2_4_sparse(_weight(2, 8))
    with pytest.raises(ValueError, match="not 2:4 sparse"):
        ref.compress_2_4(_weight(2, 8))
    with pytest.raises(ValueError, match="multiple of 4"):
        ref.compress_2_4(_weight(2, 6))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_activations_match_the_formulas(dtype):
    x = _weight(3, 22, dtype=dtype)
    gate, up = x[:, :11].float(), x[:, 11:].float()
    torch.testing.assert_close(ref.silu_and_mul(x), (F.silu(gate) * up).to(dtype), rtol=0, atol=0)
    for approximate in ("none", "tanh"):
        torch.testing.assert_close(
            ref.gelu_and_mul(x, approximate), (F.gelu(gate, approximate=approximate) * up).to(dtype), rtol=0, atol=0
        )
        torch.testing.assert_close(ref.gelu(x, approximate), F.gelu(x.float(), approximate=approximate).to(dtype))
    with pytest.raises(ValueError, match="even last dimension"):
        ref.silu_and_mul(x[:, :5])

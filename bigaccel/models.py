"""A small Llama-style decoder, written here so that the demo, the tests and the
benchmarks have a realistic model without downloads: token embeddings, decoder
layers of RMSNorm -> attention (q/k/v/o projections, rotary positions, causal,
grouped KV heads) and RMSNorm -> gated MLP (gate_proj, up_proj, down_proj, act_fn),
a final norm and an lm_head, with the module names of transformers' Llama, so that
recipes and filters written for one apply to the other.

    model = TinyLlama(TinyLlamaConfig(hidden=512, layers=4), seed=0)
    logits = model(torch.randint(0, model.config.vocab, (batch, seq)))
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class TinyLlamaConfig:
    vocab: int = 4096
    hidden: int = 512
    intermediate: int = 1408  # ~ 8/3 * hidden, rounded to a multiple of 64, as in Llama
    layers: int = 4
    heads: int = 8
    kv_heads: int = 4
    rope_theta: float = 10000.0
    tie_embeddings: bool = False  # lm_head.weight is embed_tokens.weight


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.float()
        return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)).to(x.dtype) * self.weight


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    return x * cos + torch.cat((-x2, x1), dim=-1) * sin


class Attention(nn.Module):
    def __init__(self, config: TinyLlamaConfig):
        super().__init__()
        self.heads, self.kv_heads = config.heads, config.kv_heads
        self.head_dim = config.hidden // config.heads
        self.q_proj = nn.Linear(config.hidden, config.heads * self.head_dim, bias=False)
        self.k_proj = nn.Linear(config.hidden, config.kv_heads * self.head_dim, bias=False)
        self.v_proj = nn.Linear(config.hidden, config.kv_heads * self.head_dim, bias=False)
        self.o_proj = nn.Linear(config.heads * self.head_dim, config.hidden, bias=False)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        b, s, _ = x.shape
        q = self.q_proj(x).view(b, s, self.heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(b, s, self.kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(b, s, self.kv_heads, self.head_dim).transpose(1, 2)
        q, k = _rotate(q, cos, sin), _rotate(k, cos, sin)
        repeat = self.heads // self.kv_heads
        k, v = k.repeat_interleave(repeat, dim=1), v.repeat_interleave(repeat, dim=1)
        out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.o_proj(out.transpose(1, 2).reshape(b, s, -1))


class GatedMLP(nn.Module):
    """down_proj(act_fn(gate_proj(x)) * up_proj(x)), as LlamaMLP."""

    def __init__(self, hidden: int, intermediate: int):
        super().__init__()
        self.gate_proj = nn.Linear(hidden, intermediate, bias=False)
        self.up_proj = nn.Linear(hidden, intermediate, bias=False)
        self.down_proj = nn.Linear(intermediate, hidden, bias=False)
        self.act_fn = nn.SiLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(self.act_fn(self.gate_proj(x)) * self.up_proj(x))


class DecoderLayer(nn.Module):
    def __init__(self, config: TinyLlamaConfig):
        super().__init__()
        self.input_layernorm = RMSNorm(config.hidden)
        self.self_attn = Attention(config)
        self.post_attention_layernorm = RMSNorm(config.hidden)
        self.mlp = GatedMLP(config.hidden, config.intermediate)

    def forward(self, x, cos, sin):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin)
        return x + self.mlp(self.post_attention_layernorm(x))


class TinyLlamaModel(nn.Module):
    def __init__(self, config: TinyLlamaConfig):
        super().__init__()
        self.embed_tokens = nn.Embedding(config.vocab, config.hidden)
        self.layers = nn.ModuleList(DecoderLayer(config) for _ in range(config.layers))
        self.norm = RMSNorm(config.hidden)
        head_dim = config.hidden // config.heads
        inv_freq = 1.0 / (config.rope_theta ** (torch.arange(0, head_dim, 2).float() / head_dim))
        self.register_buffer("inv_freq", inv_freq, persistent=False)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.embed_tokens(tokens)
        angles = torch.arange(tokens.shape[1], device=tokens.device).float()[:, None] * self.inv_freq
        angles = torch.cat((angles, angles), dim=-1)
        cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
        for layer in self.layers:
            x = layer(x, cos, sin)
        return self.norm(x)


class TinyLlama(nn.Module):
    """Token ids [batch, seq] -> logits [batch, seq, vocab]. Random init from `seed`:
    normal(0, 0.02) weights as Llama's initializer, so activations have realistic scales."""

    def __init__(self, config: TinyLlamaConfig | None = None, seed: int = 0, device: torch.device | str = "cpu"):
        """`device`: where the weights are made (a 7B init on a GPU takes a second, on a CPU
        minutes); the same seed gives the same weights on the same kind of device."""
        super().__init__()
        self.config = config = config or TinyLlamaConfig()
        device = torch.device(device)
        generator = torch.Generator(device=device).manual_seed(seed)
        with torch.device(device):
            self.model = TinyLlamaModel(config)
            self.lm_head = nn.Linear(config.hidden, config.vocab, bias=False)
        for name, p in self.named_parameters():
            if not name.endswith("norm.weight"):
                with torch.no_grad():
                    p.copy_(torch.randn(p.shape, generator=generator, device=device) * 0.02)
        if config.tie_embeddings:
            self.lm_head.weight = self.model.embed_tokens.weight

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.lm_head(self.model(tokens))


def tiny_llama(seed: int = 0, **config) -> TinyLlama:
    """TinyLlama(TinyLlamaConfig(**config), seed) in eval mode."""
    return TinyLlama(TinyLlamaConfig(**config), seed=seed).eval()

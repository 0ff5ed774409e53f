"""What the text models of every family share: masked LM encoders and seq2seq encoder-decoders
built from one backbone, their sizes, incremental greedy decoding and the FLOP formulas' frame.

One backbone (`TokenStack`: learned positions, a stack of one family's blocks, the family's norm,
between a token embedding and an output head tied to it) with the block injected. A family's text
block lives in the family's own file (bench/models/mixer.py, resmlp.py, gmlp.py) and subclasses
timm's vision block, so its parameters and initialisation are those of the vision models; only the
token mixing changes:

- Fixed maximum length. Token-mixing weights are sized for the task's maximum length
  (spec.seq_len for an encoder, spec.target_len for a decoder). A shorter input uses the
  top-left slice of each token-mixing matrix, so position t always means the same weights.
- Padding never leaks. Zeroing the columns of padded source positions in a token-mixing matrix
  equals zeroing the padded inputs before it, which is what the blocks do; sequences are
  right-padded, so a real token's output does not depend on pad content or pad length.
- Causal decoding. A decoder's token-mixing matrices are multiplied by a lower-triangular mask,
  as in the ResMLP translation experiments. Mixer's token MLP has two maps; both are made
  lower-triangular by giving each position its own hidden units (unit h belongs to position
  h // r, r units per position), so no hidden unit sees a later position.
- Variants (bench.core.config.VariantConfig): ResMLP's norm, token mixer and layer scale, and gMLP's
  gate initialisation are injected into the blocks. Convolutional token mixing is 1-D, kernel 3,
  over padded-and-zeroed inputs (causal: padded on the left only, so decoders stay causal).
  BatchNorm is not offered on text: its batch statistics would mix padded positions into real ones.
  aMLP is gMLP with parts.TinyAttention added to the gate, masked like the token mixing.
- Cross-attention stays: each decoder block is followed by a pre-norm residual
  nn.MultiheadAttention over the encoder output, with the source padding as key padding mask.
- Incremental decoding. Greedy decoding computes one new decoder position per step from a cache of
  each block's token-mixing inputs at the earlier positions, exactly (see "Incremental greedy
  decoding" below): every decoder block has a `step(x, t, cache)`.

Every family's text models and the Transformer baselines share the interfaces of `MaskedLM` and
`Seq2SeqModel`, so greedy decoding is written once.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Optional, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers import Mlp
from timm.models import named_apply
from timm.models.mlp_mixer import _init_weights as init_mixer_weights  # private, but it is the vision models' init: both share it

from bench.core.spec import TaskSpec

TEXT_MODALITIES = ("mlm", "seq2seq")


@dataclass(frozen=True)
class TextSize:
    """One named text size. MLM models use `layers`; seq2seq models `encoder_layers` + `decoder_layers`."""

    dim: int
    heads: int  # attention heads (the Transformer) / cross-attention heads (the MLP decoders)
    mlp_ratio: Union[float, tuple[float, float]]  # channel MLP width / dim; Mixer: (token, channel)
    layers: int
    encoder_layers: int
    decoder_layers: int
    max_len: int  # longest source or target this size accepts


# Width, heads and longest input of each text size, the same in all four families: BERT's sizes,
# with "mini" a CPU-sized width of 128. An MLP family needs max_len <= dim to keep its
# token-mixing weights small next to the rest.
SHAPES = {"mini": (128, 4, 128), "small": (512, 8, 512), "base": (768, 12, 512)}


def text_sizes(mlp_ratio, **depths: tuple[int, int, int]) -> dict[str, TextSize]:
    """A family's sizes from its MLP ratio and (layers, encoder_layers, decoder_layers) per size name."""
    return {
        name: TextSize(dim, heads, mlp_ratio, *depths[name], max_len=max_len)
        for name, (dim, heads, max_len) in SHAPES.items()
    }


def default_size(spec: TaskSpec) -> str:
    return "mini"


def check_lengths(spec: TaskSpec, size_name: str, size: TextSize) -> Optional[str]:
    """Why a text task cannot run at this size (the models are built for a fixed maximum length), or None."""
    lengths = {"sequence length": spec.seq_len}
    if spec.modality == "seq2seq":
        lengths["target length"] = spec.target_len
    for what, length in lengths.items():
        if length is None:
            return f"the model needs a fixed {what}, and the task gives none."
        if length > size.max_len:
            return f"its {what} {length} exceeds the {size.max_len} tokens this size accepts."
    return None


# ---------------------------------------------------------------------------------------------
# Token mixing over a fixed maximum length


def causal_mask(rows: int, cols: int, rows_per_position: int = 1, cols_per_position: int = 1) -> torch.Tensor:
    """(rows, cols) float mask of a token-mixing weight: 1 where unit j's position <= unit i's position."""
    row_pos = torch.arange(rows) // rows_per_position
    col_pos = torch.arange(cols) // cols_per_position
    return (col_pos[None, :] <= row_pos[:, None]).float()


def mix_tokens(linear: nn.Linear, x: torch.Tensor, rows: int, causal: Optional[torch.Tensor]) -> torch.Tensor:
    """`linear` over the last axis of x (..., cols) -> (..., rows), with the top-left rows x cols
    slice of its weight (an input shorter than the maximum length), masked when causal."""
    weight = linear.weight[:rows, : x.shape[-1]]
    if causal is not None:
        weight = weight * causal[:rows, : x.shape[-1]]
    return F.linear(x, weight, linear.bias[:rows])


class TokenMlp(Mlp):
    """An MLP over tokens, (B, C, T) -> (B, C, T): Mixer's, and ResMLP's --token-mixing mlp. Causal: r hidden units per position (the
    width rounded up to a multiple of the length), so both token maps can be lower-triangular."""

    def __init__(self, seq_len: int, hidden: int, causal: bool):
        r = math.ceil(hidden / seq_len) if causal else None
        super().__init__(seq_len, r * seq_len if causal else hidden)
        self.per_position = r  # None: bidirectional, hidden units belong to no position
        self.register_buffer("causal_in", causal_mask(r * seq_len, seq_len, rows_per_position=r) if causal else None,
                             persistent=False)
        self.register_buffer("causal_out", causal_mask(seq_len, r * seq_len, cols_per_position=r) if causal else None,
                             persistent=False)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        T = y.shape[-1]
        hidden = self.per_position * T if self.per_position else self.fc1.out_features
        y = self.act(mix_tokens(self.fc1, y, hidden, self.causal_in))  # (B, C, H)
        return mix_tokens(self.fc2, y, T, self.causal_out)  # (B, C, T)

    def step(self, y: torch.Tensor, t: int, cache: dict) -> torch.Tensor:
        """Output t (B, C) of the causal token MLP, given its input at position t, y (B, C): the r hidden
        units of position t read the inputs of positions 0..t, and output t the hidden units of 0..t."""
        assert self.per_position, "only a causal token MLP decodes one position at a time"
        r, fc1, fc2 = self.per_position, self.fc1, self.fc2
        inputs = cached(cache, "inputs", (*y.shape, fc1.in_features), y)  # (B, C, L)
        hidden = cached(cache, "hidden", (*y.shape, fc1.out_features), y)  # (B, C, r * L)
        inputs[..., t] = y
        units = slice(r * t, r * (t + 1))  # the hidden units of position t
        hidden[..., units] = self.act(inputs[..., : t + 1] @ fc1.weight[units, : t + 1].T + fc1.bias[units])
        return mix_step(fc2.weight, fc2.bias, hidden, t, per_position=r)


# ---------------------------------------------------------------------------------------------
# The backbone


class CrossAttention(nn.Module):
    """Pre-norm residual attention from decoder positions to the encoder output."""

    def __init__(self, dim: int, heads: int, norm_layer):
        super().__init__()
        self.norm = norm_layer(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)

    def forward(self, x: torch.Tensor, memory: torch.Tensor, memory_mask: torch.Tensor) -> torch.Tensor:
        y, _ = self.attn(self.norm(x), memory, memory, key_padding_mask=memory_mask == 0, need_weights=False)
        return x + y  # (B, T, C)


class TokenStack(nn.Module):
    """Learned positions, `depth` blocks of one family (each followed by cross-attention in a
    decoder), then the family's norm. Takes token embeddings, so encoder, decoder and output
    head can share one embedding."""

    def __init__(self, block, norm_layer, size: TextSize, depth: int, max_len: int, causal: bool,
                 cross_attention: bool):
        super().__init__()
        self.max_len = max_len
        self.pos = nn.Parameter(torch.zeros(1, max_len, size.dim))
        self.blocks = nn.ModuleList([block(size.dim, max_len, size.mlp_ratio, causal) for _ in range(depth)])
        self.cross = (
            nn.ModuleList([CrossAttention(size.dim, size.heads, norm_layer) for _ in range(depth)])
            if cross_attention
            else None
        )
        self.norm = norm_layer(size.dim)
        named_apply(init_mixer_weights, self)  # timm's Mixer init, incl. the SGU's init_weights
        nn.init.trunc_normal_(self.pos, std=0.02)

    def forward(self, x, mask, memory=None, memory_mask=None) -> torch.Tensor:
        T = x.shape[1]  # x: (B, T, C) token embeddings, mask: (B, T) 1 = real token
        if T > self.max_len:
            raise ValueError(f"got {T} tokens; this model is built for at most {self.max_len}.")
        keep = mask[..., None].to(x.dtype)  # (B, T, 1)
        x = x + self.pos[:, :T]  # (B, T, C)
        for i, block in enumerate(self.blocks):
            x = block(x, keep)  # (B, T, C)
            if self.cross is not None:
                x = self.cross[i](x, memory, memory_mask)  # (B, T, C)
        return self.norm(x)


class ScaledEmbedding(nn.Embedding):
    """Token embedding with weights ~ N(0, 1/dim), multiplied by sqrt(dim) on the way in (as fairseq's
    Transformer does), so tokens enter the blocks at unit scale while the tied head's logits start at
    unit scale too. At BERT's std of 0.02 and no embedding norm, the first token-mixing MLP (Mixer's,
    randomly initialised and not gated) outweighs each token's own embedding 50 to 1, and the model
    can only learn the unigram distribution."""

    def __init__(self, vocab_size: int, dim: int):
        super().__init__(vocab_size, dim)
        self.scale = math.sqrt(dim)
        nn.init.normal_(self.weight, std=1 / self.scale)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return super().forward(ids) * self.scale


def tied_embedding(vocab_size: int, dim: int) -> tuple[ScaledEmbedding, nn.Linear]:
    """Token embedding and output head sharing one matrix, as BERT and BART do."""
    embed = ScaledEmbedding(vocab_size, dim)
    head = nn.Linear(dim, vocab_size)
    head.weight = embed.weight
    nn.init.zeros_(head.bias)
    return embed, head


class MaskedLM(nn.Module):
    """`logits = model(input_ids, attention_mask)`: (B, T) ids and 1/0 mask -> (B, T, vocab) logits.

    `model(input_ids, attention_mask, labels_mask)`, with a (B, T) bool mask of the positions to
    score, projects only those: (N, vocab) logits for the N True positions in row-major order (as
    `labels[labels_mask]`), gathered before the head, as fairseq's masked LM does. At 15% masking
    this skips 85% of the head, which at small widths and an 8,000-token vocabulary is most of the
    forward. Every MLM model (the Transformer baseline included) takes this argument, and names
    what runs on the gathered positions `lm_head` (MlmTask.head_flops_share counts it)."""

    def __init__(self, spec: TaskSpec, size: TextSize, block, norm_layer):
        super().__init__()
        self.embed, self.head = tied_embedding(spec.vocab_size, size.dim)
        self.encoder = TokenStack(block, norm_layer, size, size.layers, spec.seq_len, causal=False, cross_attention=False)

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels_mask: Optional[torch.Tensor] = None
    ) -> torch.Tensor:
        x = self.encoder(self.embed(input_ids), attention_mask)  # (B, T, C)
        if labels_mask is not None:
            x = x[labels_mask]  # (N, C)
        return self.head(x)  # (B, T, V), or (N, V) with labels_mask

    @property
    def lm_head(self) -> nn.Module:
        return self.head


class Seq2SeqModel(nn.Module, ABC):
    """The seq2seq interface: subclasses give `encode` and `decode`; forward and greedy `generate` follow.

    `logits = model(input_ids, attention_mask, decoder_input_ids, decoder_attention_mask)` -> (B, T_tgt, V),
    where decoder_input_ids are the targets shifted right, starting with bos.
    """

    def __init__(self, spec: TaskSpec):
        super().__init__()
        self.target_len = spec.target_len
        self.pad_token_id = spec.pad_token_id
        self.bos_token_id = spec.bos_token_id
        self.eos_token_id = spec.eos_token_id

    @abstractmethod
    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """(B, S) source -> (B, S, C) memory."""

    @abstractmethod
    def decode(self, decoder_input_ids, decoder_attention_mask, memory, attention_mask) -> torch.Tensor:
        """(B, T) target prefix (mask None = no padding) and memory -> (B, T, V) logits."""

    def forward(self, input_ids, attention_mask, decoder_input_ids, decoder_attention_mask=None) -> torch.Tensor:
        memory = self.encode(input_ids, attention_mask)  # (B, S, C)
        return self.decode(decoder_input_ids, decoder_attention_mask, memory, attention_mask)  # (B, T, V)

    @torch.no_grad()
    def generate(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, max_new_tokens: int) -> torch.Tensor:
        """Greedy decoding from bos: (B, max_new_tokens) long, without the bos. A row stops at its
        eos (kept) and the positions after it hold pad; decoding ends as soon as every row has
        stopped. Each step computes the newest position only where the model can (`decode_step`)."""
        if max_new_tokens > self.target_len:
            raise ValueError(f"max_new_tokens={max_new_tokens} exceeds the model's target length {self.target_len}.")
        memory = self.encode(input_ids, attention_mask)  # (B, S, C)
        state = self.start_decoding(memory, attention_mask)
        B = input_ids.shape[0]
        # A fixed width, so batches gather across processes without re-padding.
        out = input_ids.new_full((B, max_new_tokens), self.pad_token_id)
        token = input_ids.new_full((B,), self.bos_token_id)  # the decoder's input at step t
        done = torch.zeros(B, dtype=torch.bool, device=input_ids.device)
        for t in range(max_new_tokens):
            token = self.decode_step(state, token, t).argmax(dim=-1)  # (B,)
            stopped = token == self.eos_token_id
            token = token.masked_fill(done, self.pad_token_id)
            out[:, t] = token
            done |= stopped
            if done.all():
                break
        return out

    def start_decoding(self, memory: torch.Tensor, attention_mask: torch.Tensor) -> dict:
        """What `decode_step` carries from one step to the next. Here the prefix, which every step
        reruns whole; a model that can compute one new position from a cache overrides both."""
        return {"memory": memory, "attention_mask": attention_mask, "prefix": None}

    def decode_step(self, state: dict, token: torch.Tensor, t: int) -> torch.Tensor:
        """(B, V) logits at position t, given the decoder's input there, token (B,) (bos at t = 0)."""
        prefix = token[:, None] if t == 0 else torch.cat([state["prefix"], token[:, None]], dim=1)  # (B, t+1)
        state["prefix"] = prefix
        return self.decode(prefix, None, state["memory"], state["attention_mask"])[:, -1]


class MixingSeq2Seq(Seq2SeqModel):
    """Encoder with bidirectional token mixing; decoder with causal token mixing and cross-attention."""

    def __init__(self, spec: TaskSpec, size: TextSize, block, norm_layer):
        super().__init__(spec)
        self.embed, self.head = tied_embedding(spec.vocab_size, size.dim)
        self.encoder = TokenStack(
            block, norm_layer, size, size.encoder_layers, spec.seq_len, causal=False, cross_attention=False
        )
        self.decoder = TokenStack(
            block, norm_layer, size, size.decoder_layers, spec.target_len, causal=True, cross_attention=True
        )

    def encode(self, input_ids, attention_mask):
        return self.encoder(self.embed(input_ids), attention_mask)  # (B, S, C)

    def decode(self, decoder_input_ids, decoder_attention_mask, memory, attention_mask):
        if decoder_attention_mask is None:
            decoder_attention_mask = torch.ones_like(decoder_input_ids)
        x = self.decoder(self.embed(decoder_input_ids), decoder_attention_mask, memory, attention_mask)  # (B, T, C)
        return self.head(x)  # (B, T, V)

    def start_decoding(self, memory, attention_mask):
        return {
            "caches": [{} for _ in self.decoder.blocks],  # one per block, filled as positions come
            "memory": [memory_keys_values(cross, memory) for cross in self.decoder.cross],
            "memory_mask": attention_mask.bool()[:, None, None, :],  # (B, 1, 1, S): the real source tokens
        }

    def decode_step(self, state, token, t):
        x = self.embed(token[:, None])  # (B, 1, C)
        x = decoder_step(self.decoder, x, t, state["caches"], state["memory"], state["memory_mask"])  # (B, 1, C)
        return self.head(x[:, 0])  # (B, V)


# ---------------------------------------------------------------------------------------------
# Incremental greedy decoding: one new position per step
#
# A causal decoder's output at position t depends on positions <= t only, and a new position changes
# no earlier output. So step t computes position t alone, from a per-block cache of what the block's
# token mixing read at the earlier positions. Every family is exact this way:
# - linear token mixing (ResMLP, gMLP's gate): row t of the lower-triangular matrix times the cached
#   inputs of positions 0..t;
# - Mixer's token MLP (and ResMLP's --token-mixing mlp): the r hidden units of position t read the
#   inputs of positions 0..t (first map, masked), and output t reads the hidden units of positions
#   0..t (second map, masked). A hidden unit of position s < t never sees a later input, so its
#   cached value is final;
# - causal convolution (--token-mixing conv3x3 / dwconv): the inputs of positions t-2..t;
# - aMLP's tiny attention: the keys and values of positions 0..t;
# - cross-attention: the memory's keys and values, projected once per batch instead of every step.
# Each decoder block does its part in its `step`, each causal token mixer in its own `step`.
# Everything else in a block is per position. A step does the full forward's arithmetic at position
# t, up to the order of float sums (tests check that the greedy tokens are the same).


def cached(cache: dict, key: str, shape: tuple, like: torch.Tensor) -> torch.Tensor:
    """The cache tensor `key`: zeros of `shape` (like `like`) on first use."""
    if key not in cache:
        cache[key] = like.new_zeros(shape)
    return cache[key]


def mix_step(weight: torch.Tensor, bias: torch.Tensor, inputs: torch.Tensor, t: int, per_position: int = 1):
    """Output t of a causal token mixing: row t of its weight over the inputs (..., >= per_position * (t+1))
    of positions 0..t (the row's later entries are masked to zero anyway), plus bias t: (...)."""
    n = per_position * (t + 1)
    return inputs[..., :n] @ weight[t, :n] + bias[t]


def memory_keys_values(cross: CrossAttention, memory: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-attention's keys and values of the memory (B, S, C), as nn.MultiheadAttention projects
    them: (B, heads, S, C / heads) each."""
    attn, C = cross.attn, memory.shape[-1]
    w, b = attn.in_proj_weight, attn.in_proj_bias
    k, v = F.linear(memory, w[C : 2 * C], b[C : 2 * C]), F.linear(memory, w[2 * C :], b[2 * C :])  # (B, S, C)
    return tuple(z.unflatten(-1, (attn.num_heads, -1)).transpose(1, 2) for z in (k, v))


def cross_step(cross: CrossAttention, x: torch.Tensor, keys, values, memory_mask: torch.Tensor) -> torch.Tensor:
    """CrossAttention at one position: x (B, 1, C) -> (B, 1, C), with the memory's keys and values."""
    attn, C = cross.attn, x.shape[-1]
    q = F.linear(cross.norm(x), attn.in_proj_weight[:C], attn.in_proj_bias[:C])  # (B, 1, C)
    q = q.unflatten(-1, (attn.num_heads, -1)).transpose(1, 2)  # (B, H, 1, D)
    y = F.scaled_dot_product_attention(q, keys, values, attn_mask=memory_mask)  # (B, H, 1, D)
    return x + attn.out_proj(y.transpose(1, 2).flatten(2))


def decoder_step(stack: TokenStack, x, t: int, caches: list[dict], memory: list, memory_mask) -> torch.Tensor:
    """TokenStack.forward of a decoder at position t alone: x (B, 1, C) token embedding -> (B, 1, C)."""
    if t >= stack.max_len:
        raise ValueError(f"position {t} is past the {stack.max_len} positions this decoder is built for.")
    x = x + stack.pos[:, t : t + 1]
    for block, cross, cache, (keys, values) in zip(stack.blocks, stack.cross, caches, memory):
        x = cross_step(cross, block.step(x, t, cache), keys, values, memory_mask)
    return stack.norm(x)


def build(spec: TaskSpec, size: TextSize, block, norm_layer) -> nn.Module:
    """`block(dim, seq_len, mlp_ratio, causal)` makes one block; `norm_layer` the final norm and cross-attention's."""
    if spec.modality == "mlm":
        return MaskedLM(spec, size, block, norm_layer)
    return MixingSeq2Seq(spec, size, block, norm_layer)


# ---------------------------------------------------------------------------------------------
# FLOP formulas: forward FLOPs per sample of full-length inputs (seq_len tokens; seq2seq: seq_len
# source and target_len target tokens), as torch's FLOP counter counts them (2 per multiply-add of
# the matmuls and attention). The head runs on the scored positions of masked LM and on every
# target position of seq2seq. `mlp_flops` (bench.models.parts) counts a channel MLP.


def attention_flops(dim: int, queries: int, keys: int) -> int:
    """Multi-head attention of width dim: the q and output maps at the queries, the k and v maps at
    the keys, and the two products over every query-key pair (the counter counts masked ones too)."""
    return 4 * queries * dim * dim + 4 * keys * dim * dim + 4 * queries * keys * dim


def text_flops(block_flops):
    """The formula of a family whose block costs block_flops(size, tokens, causal) over `tokens`
    positions (the block's full length): an encoder for masked LM, an encoder and a decoder whose
    blocks are each followed by cross-attention for seq2seq, and the tied output head."""

    def flops(spec: TaskSpec, size: TextSize, scored: Optional[float] = None) -> float:
        D, V = size.dim, spec.vocab_size
        if spec.modality == "mlm":
            T = spec.seq_len
            return size.layers * block_flops(size, T, False) + 2 * (T if scored is None else scored) * D * V
        S, T = spec.seq_len, spec.target_len
        encoder = size.encoder_layers * block_flops(size, S, False)
        decoder = size.decoder_layers * (block_flops(size, T, True) + attention_flops(D, T, S))
        return encoder + decoder + 2 * T * D * V

    return flops

"""The Transformer baseline for text: pre-norm RoBERTa for masked LM, mBART for seq2seq, from `transformers`.

Built from a config with random weights (never downloaded), and wrapped to the interfaces of
bench/models/text.py (the text models' shared parts): MLM models return the logits tensor; seq2seq models are `Seq2SeqModel`s,
so they share its forward and its greedy `generate`'s contract (run by transformers' generate with
its key/value cache). Dropout is off, as in the MLP families, so the families differ only in how
tokens are mixed.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from transformers import (
    MBartConfig,
    MBartForConditionalGeneration,
    RobertaPreLayerNormConfig,
    RobertaPreLayerNormModel,
)
from transformers.modeling_outputs import BaseModelOutput

from bench.models import register_model
from bench.models.parts import mlp_flops
from bench.models.text import (
    TEXT_MODALITIES, Seq2SeqModel, TextSize, attention_flops, check_lengths, default_size, text_sizes,
)
from bench.core.spec import TaskSpec

# BERT's depths; the seq2seq models split them evenly between encoder and decoder, as BART-base
# does with BERT-base's 12 layers. A Transformer layer holds about 12 d^2 weights (16 d^2 in a
# decoder, with cross-attention): the MLP families' sizes give lighter blocks more depth, so that
# every size of theirs stays within 10% of the Transformer's parameters for the same task.
SIZES = text_sizes(4.0, mini=(4, 2, 2), small=(4, 2, 2), base=(12, 6, 6))


def init_std(size: TextSize) -> float:
    """The std of every weight matrix and embedding at initialisation: 1/sqrt(width), as T5 and
    fairseq's embeddings use, not BERT's and BART's fixed 0.02 (about 1/sqrt(768), BERT-base's width).
    At width 128, 0.02 is 4.4 times too small: the attention logits start near 0.05 (uniform
    attention), and the gradient of each of the query and key projections is proportional to the
    other's small weights, so attention learns to look anywhere only slowly. The seq2seq Transformer
    then needed about four times the MLPs' steps to learn to copy its input (docs/sanity.md has the
    curves before and after)."""
    return size.dim ** -0.5


class PreNormMLM(nn.Module):
    """RoBERTa with pre-layer-norm blocks (RobertaPreLayerNormModel) and the MLP families' masked-LM head:
    the projection to the vocabulary tied to the token embedding, with a bias. Pre-norm, like the MLP
    families; BERT's post-norm blocks collapsed to predicting one token on some seeds at the learning
    rate the MLP families train at. Not RoBERTa's own head (dense, GELU and LayerNorm before that
    projection): with it the baseline reached 0.102 masked-token accuracy on wordnet where the same
    model with the tied projection alone, like the torch.nn reference, reached 0.147 (docs/baselines.md).
    Positions are given as 0..T-1: RoBERTa would otherwise count them from the padding index."""

    def __init__(self, spec: TaskSpec, size: TextSize):
        super().__init__()
        config = RobertaPreLayerNormConfig(
            vocab_size=spec.vocab_size,
            hidden_size=size.dim,
            num_hidden_layers=size.layers,
            num_attention_heads=size.heads,
            intermediate_size=int(size.mlp_ratio * size.dim),
            max_position_embeddings=spec.seq_len,
            type_vocab_size=1,  # no sentence pairs
            pad_token_id=spec.pad_token_id,
            hidden_dropout_prob=0.0,
            attention_probs_dropout_prob=0.0,
            initializer_range=init_std(size),
        )
        self.roberta = RobertaPreLayerNormModel(config, add_pooling_layer=False)
        embeddings = self.roberta.embeddings
        # With one token type (no sentence pairs) RoBERTa adds the same random vector, as large as a
        # token's embedding, to every position before the embedding LayerNorm, a third of what the norm
        # scales. It starts at zero here, a learned bias, so that a token and its position enter, as in
        # every family: beside sinusoidal positions the vector cost 0.012 masked-token accuracy at 4x
        # wordnet, beside these learned ones nothing (docs/baselines.md, "What the 4x gap is").
        nn.init.zeros_(embeddings.token_type_embeddings.weight)
        # RoBERTa's position table keeps a row at the padding index, which never learns; positions are
        # given as 0..T-1 here, so that row would be a real position (1 with RoBERTa's tokenizer)
        # without a position of its own. Every row of this table learns. Learned positions from noise,
        # not sinusoids: with sinusoids the baseline fails the `motif` sanity check (docs/sanity.md).
        embeddings.position_embeddings = nn.Embedding(spec.seq_len, size.dim)
        nn.init.normal_(embeddings.position_embeddings.weight, std=init_std(size))
        self.head = nn.Linear(size.dim, spec.vocab_size)
        self.head.weight = self.roberta.embeddings.word_embeddings.weight  # tied, as BERT and RoBERTa tie theirs
        nn.init.zeros_(self.head.bias)

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels_mask: Optional[torch.Tensor] = None
    ) -> torch.Tensor:
        """As `MaskedLM.forward`: (B, T, V) logits, or (N, V) for the positions of `labels_mask` only,
        gathered before the head."""
        positions = torch.arange(input_ids.shape[1], device=input_ids.device).expand_as(input_ids)  # (B, T)
        x = self.roberta(
            input_ids=input_ids, attention_mask=attention_mask, position_ids=positions
        ).last_hidden_state  # (B, T, C)
        if labels_mask is not None:
            x = x[labels_mask]  # (N, C)
        return self.head(x)  # (B, T, V), or (N, V) with labels_mask

    @property
    def lm_head(self) -> nn.Module:
        return self.head


class MBartSeq2Seq(Seq2SeqModel):
    """mBART (BART with pre-layer-norm blocks) split into encode / decode for the shared greedy
    decoding. Pre-norm, like the MLP families; BART's post-norm blocks diverged on some seeds at the
    learning rates the MLP families train at."""

    def __init__(self, spec: TaskSpec, size: TextSize):
        super().__init__(spec)
        ffn = int(size.mlp_ratio * size.dim)
        config = MBartConfig(
            vocab_size=spec.vocab_size,
            d_model=size.dim,
            encoder_layers=size.encoder_layers,
            decoder_layers=size.decoder_layers,
            encoder_attention_heads=size.heads,
            decoder_attention_heads=size.heads,
            encoder_ffn_dim=ffn,
            decoder_ffn_dim=ffn,
            max_position_embeddings=max(spec.seq_len, spec.target_len),
            pad_token_id=spec.pad_token_id,
            bos_token_id=spec.bos_token_id,
            eos_token_id=spec.eos_token_id,
            decoder_start_token_id=spec.bos_token_id,
            forced_eos_token_id=None,
            dropout=0.0,
            attention_dropout=0.0,
            activation_dropout=0.0,
            use_cache=False,  # training and forward have no use for it; generate turns it on
            init_std=init_std(size),
        )
        self.mbart = MBartForConditionalGeneration(config)

    def encode(self, input_ids, attention_mask):
        return self.mbart.get_encoder()(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state  # (B, S, C)

    def decode(self, decoder_input_ids, decoder_attention_mask, memory, attention_mask):
        return self.mbart(
            attention_mask=attention_mask,
            encoder_outputs=(memory,),
            decoder_input_ids=decoder_input_ids,
            decoder_attention_mask=decoder_attention_mask,
        ).logits  # (B, T, V)

    @torch.no_grad()
    def generate(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, max_new_tokens: int) -> torch.Tensor:
        """Seq2SeqModel.generate's greedy decoding and output, by transformers' own generate with its
        key/value cache, so a step computes the newest position only: (B, max_new_tokens), eos kept,
        pad after it, done when every row has stopped."""
        if max_new_tokens > self.target_len:
            raise ValueError(f"max_new_tokens={max_new_tokens} exceeds the model's target length {self.target_len}.")
        memory = self.encode(input_ids, attention_mask)  # (B, S, C)
        out = self.mbart.generate(
            encoder_outputs=BaseModelOutput(last_hidden_state=memory),
            attention_mask=attention_mask,
            max_new_tokens=max_new_tokens,
            min_new_tokens=0,
            do_sample=False,
            num_beams=1,
            use_cache=True,
            decoder_start_token_id=self.bos_token_id,
            eos_token_id=self.eos_token_id,
            pad_token_id=self.pad_token_id,
        )[:, 1:]  # (B, <= max_new_tokens): without the decoder start token
        return F.pad(out, (0, max_new_tokens - out.shape[1]), value=self.pad_token_id)  # a fixed width


def layer_flops(spec: TaskSpec, size: TextSize) -> float:
    """The Transformer layers' forward FLOPs per sample (this baseline's and torch-transformer's): per
    layer self-attention (quadratic in the length) and the feed-forward MLP; a seq2seq decoder layer
    adds cross-attention."""
    D, F = size.dim, int(size.mlp_ratio * size.dim)
    if spec.modality == "mlm":
        T = spec.seq_len
        return size.layers * (attention_flops(D, T, T) + mlp_flops(T, D, F))
    S, T = spec.seq_len, spec.target_len
    encoder = size.encoder_layers * (attention_flops(D, S, S) + mlp_flops(S, D, F))
    decoder = size.decoder_layers * (attention_flops(D, T, T) + attention_flops(D, T, S) + mlp_flops(T, D, F))
    return encoder + decoder


def flops(spec: TaskSpec, size: TextSize, scored: Optional[float] = None) -> float:
    """The layers, then the projection to the vocabulary: on the scored positions for masked LM, on every
    target position for seq2seq."""
    positions = spec.target_len if spec.modality == "seq2seq" else spec.seq_len if scored is None else scored
    return layer_flops(spec, size) + 2 * positions * size.dim * spec.vocab_size


@register_model(
    "transformer",
    TEXT_MODALITIES,
    SIZES,
    default_size,
    check=check_lengths,
    baseline=True,
    description="Transformer baseline: pre-norm RoBERTa encoder (MLM), mBART encoder-decoder (seq2seq)",
    flops=flops,
)
def build(spec: TaskSpec, size: TextSize, variant) -> nn.Module:
    if spec.modality == "mlm":
        return PreNormMLM(spec, size)
    return MBartSeq2Seq(spec, size)

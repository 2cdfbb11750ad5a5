"""What a model is, as far as memory and time care: its tensors' shapes, layer by layer.

Built from a Hugging Face config.json (core/hf_config.py), a preset (the same format, in
resources/presets/) or a local folder's safetensors headers (core/safetensors_header.py).
"""
from __future__ import annotations

from dataclasses import dataclass

from .spec_cache import SpecCache


@dataclass(frozen=True, slots=True)
class LinearShape:
    """One linear layer of a decoder block, named as in the HF module tree.

    `count` copies live in the block (MoE experts); each token passes through `active`
    of them (top-k routing). Weight shape is [d_out, d_in] (nn.Linear; GPT-2's Conv1D
    stores it transposed, which changes nothing here).
    """

    name: str
    d_in: int
    d_out: int
    bias: bool = False
    count: int = 1
    active: int = 1

    @property
    def weight_params(self) -> int:
        return self.count * self.d_in * self.d_out

    @property
    def params(self) -> int:
        return self.count * (self.d_in * self.d_out + (self.d_out if self.bias else 0))


@dataclass(frozen=True, slots=True)
class DecoderLayer:
    """One decoder block: its linears and what its forward keeps alive per token.

    mlp_width: width of the MLP intermediate one token activates (intermediate_size for a
    dense block, top_k * expert width (+ shared experts) for MoE).
    gated_mlp: SwiGLU/GeGLU (act(gate) * up) vs a plain act(fc1) MLP.
    norm_params: RMSNorm/LayerNorm weights (and biases) of the block, q/k norms included.
    num_experts: 0 for a dense block; router logits [tokens, num_experts] otherwise.
    sliding_window: tokens a query attends to in this block (None: all before it).
    """

    linears: tuple[LinearShape, ...]
    mlp_width: int
    gated_mlp: bool = True
    norm_params: int = 0
    norms: int = 2
    num_experts: int = 0
    sliding_window: int | None = None

    @property
    def params(self) -> int:
        return sum(lin.params for lin in self.linears) + self.norm_params


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """A decoder-only causal LM: embeddings, blocks (in groups of identical layers), head."""

    name: str
    model_type: str
    hidden_size: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    vocab_size: int
    tie_word_embeddings: bool
    layer_groups: tuple[tuple[int, DecoderLayer], ...]
    # final norm, learned position embeddings, anything outside the blocks and embeddings
    extra_params: int = 0
    norm_kind: str = "rms"  # "rms" | "layer"
    attn_logit_softcapping: float | None = None
    final_logit_softcapping: float | None = None
    max_position_embeddings: int = 0
    # dtype the checkpoint is stored in (config torch_dtype or safetensors header)
    stored_dtype: str = "bf16"
    # where the shapes came from: "preset", "config", "safetensors"
    source: str = "config"
    # exact total from safetensors headers; None when counted from the config
    exact_params: int | None = None
    warnings: tuple[str, ...] = ()
    # the config.json text, so the probe can rebuild the real architecture
    config_json: str = "{}"

    @property
    def num_layers(self) -> int:
        return sum(n for n, _ in self.layer_groups)

    @property
    def embedding_params(self) -> int:
        return self.vocab_size * self.hidden_size

    @property
    def lm_head_params(self) -> int:
        """Untied output projection; 0 when it shares the embedding matrix."""
        return 0 if self.tie_word_embeddings else self.vocab_size * self.hidden_size

    @property
    def block_params(self) -> int:
        return sum(n * layer.params for n, layer in self.layer_groups)

    @property
    def counted_params(self) -> int:
        return self.embedding_params + self.lm_head_params + self.block_params + self.extra_params

    @property
    def total_params(self) -> int:
        """Every parameter; the safetensors count wins over the config count."""
        return self.exact_params if self.exact_params is not None else self.counted_params

    def layers(self) -> tuple[DecoderLayer, ...]:
        """Every block in order (groups expanded)."""
        return tuple(layer for n, layer in self.layer_groups for _ in range(n))


_DISTINCT: SpecCache[tuple[tuple[tuple[int, DecoderLayer], ...], tuple[int, ...]]] = SpecCache(64)


def _distinct(spec: ModelSpec) -> tuple[tuple[tuple[int, DecoderLayer], ...], tuple[int, ...]]:
    order: dict[DecoderLayer, int] = {}
    counts: list[int] = []
    which = []
    for n, layer in spec.layer_groups:
        i = order.setdefault(layer, len(order))
        if i == len(counts):
            counts.append(0)
        counts[i] += n
        which.append(i)
    return tuple(zip(counts, order)), tuple(which)


def block_repeats(spec: ModelSpec) -> tuple[tuple[int, DecoderLayer], ...]:
    """Each distinct decoder block once with the number of layers that use it, in order of first
    use: Gemma 2/3 alternate two blocks over 42-62 groups, and hashing a block walks its linears,
    so this is worked out once per spec."""
    return _DISTINCT.get(spec, "repeats", lambda: _distinct(spec))[0]


def group_blocks(spec: ModelSpec) -> tuple[int, ...]:
    """For each of spec.layer_groups, the index of its block in block_repeats(spec)."""
    return _DISTINCT.get(spec, "repeats", lambda: _distinct(spec))[1]

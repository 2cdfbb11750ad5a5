"""GRPO's generation phase as TRL 1.16 runs it (trl/trainer/grpo_trainer.py): who generates the
completions, how many sequences decode together, and what the KV cache holds.

- Generation batch: GRPOConfig.__post_init__ sets steps_per_generation = gradient_accumulation_steps
  and generation_batch_size = per_device_train_batch_size x num_processes x steps_per_generation;
  each process generates its share at once (_generate_and_score_completions buffers it and feeds
  steps_per_generation micro-batches), so batch_size x grad_accum sequences decode together.
- transformers: unwrapped_model.generate(...) under torch.no_grad (_generate_single_turn) with
  transformers' DynamicCache (cache_utils.py DynamicLayer: keys and values [batch, kv_heads,
  tokens, head_dim] per layer, concatenated as tokens arrive; DynamicSlidingWindowLayer keeps
  at most sliding_window - 1 of them).
- vllm-colocate: vLLM runs in the training process (trl/generation/vllm_generation.py, mode
  "colocate") and reserves gpu_memory_utilization x the card for its own weights and KV cache
  for the whole run (vllm_enable_sleep_mode is False by default); weights are synced into it
  before each generation.
- vllm-server: generation runs on other GPUs (trl vllm-serve); the training card only streams
  its weights to them.
"""
from __future__ import annotations

from ..model_spec import ModelSpec
from ..plan import Plan


def generation_sequences(plan: Plan) -> int:
    """Sequences one process decodes together: per_device_train_batch_size x steps_per_generation
    (= grad_accum by default)."""
    return plan.batch_size * plan.grad_accum


def cached_tokens(plan: Plan, sliding_window: int | None = None) -> int:
    """Tokens the cache holds when the last completion token is sampled: the prompt and every
    completion token but the last (which is never fed back), or a sliding layer's window - 1."""
    tokens = plan.prompt_len + plan.completion_len - 1
    return tokens if sliding_window is None else min(tokens, sliding_window - 1)


def kv_cache_bytes(spec: ModelSpec, sequences: int, tokens: int, element_bytes: int) -> int:
    """transformers' DynamicCache: per layer a key and a value [sequences, kv_heads, tokens,
    head_dim] (layers x 2 x kv heads x head dim x tokens x batch x dtype); sliding-window layers
    (Gemma 2/3, Mistral) hold at most their window - 1 tokens."""
    per_token = 2 * spec.num_kv_heads * spec.head_dim * element_bytes
    total = 0
    for n, layer in spec.layer_groups:
        held = tokens if layer.sliding_window is None else min(tokens, layer.sliding_window - 1)
        total += n * sequences * held * per_token
    return total


def decode_step_bytes(sequences: int, vocab: int, logits_bytes: int) -> int:
    """One decoding step's sampling tensors: the last position's logits in the LM head's dtype
    (generate passes logits_to_keep=1), generation/utils.py `_sample` copies them to fp32
    (next_token_logits; with GRPOConfig's sampling defaults, temperature 1, top_p 1, top_k 0,
    no logits processor, so next_token_scores is the same tensor), softmax's probs, and the
    previous step's probs, still bound to `probs` until the new ones replace them (fp32 each)."""
    return sequences * vocab * (logits_bytes + 3 * 4)


def cache_growth_bytes(spec: ModelSpec, sequences: int, tokens: int, element_bytes: int) -> int:
    """cache_utils.py DynamicLayer.update: `self.keys = torch.cat([self.keys, key_states], dim=-2)`
    builds the grown tensor while the old one is still referenced, so one layer's keys (then its
    values) exist twice: the largest layer's at tokens - 1 when the cache reaches tokens."""
    per_token = spec.num_kv_heads * spec.head_dim * element_bytes
    return max(sequences * (tokens - 1 if layer.sliding_window is None else min(tokens - 1, layer.sliding_window - 1))
               * per_token for _, layer in spec.layer_groups)


def generate_peak_bytes(spec: ModelSpec, plan: Plan, stream_bytes: int, linear_bytes: int, attn_bytes: int,
                        logits_bytes: int) -> int:
    """The peak of unwrapped_model.generate under no_grad (transformers 5 generation/utils.py
    _sample), on top of the model state: the larger of
    - the prefill: the prompt's KV cache + a no_grad forward of the prompts (preference.
      no_grad_forward_peak_bytes, with rotary cos / sin per sequence: generate's position_ids are
      [sequences, prompt] from the attention mask) + int64 [sequences, prompt] input_ids,
      attention_mask and position_ids;
    - the last decoding step: the whole cache + int64 input_ids and attention_mask (both grown
      by torch.cat each step) + either the cache's growth (cache_growth_bytes) beside the previous
      step's fp32 next_token_logits and probs, or the step's sampling tensors (decode_step_bytes)."""
    from .preference import no_grad_forward_peak_bytes
    sequences, prompt, tokens = generation_sequences(plan), plan.prompt_len, cached_tokens(plan)
    prefill = (kv_cache_bytes(spec, sequences, prompt, attn_bytes) + 3 * 8 * sequences * prompt
               + no_grad_forward_peak_bytes(spec, sequences, prompt, stream_bytes, linear_bytes, attn_bytes, 0,
                                            rotary_sequences=sequences))
    carried = 2 * 4 * sequences * spec.vocab_size
    decode = (kv_cache_bytes(spec, sequences, tokens, attn_bytes) + 2 * 8 * sequences * tokens
              + max(cache_growth_bytes(spec, sequences, tokens, attn_bytes) + carried,
                    decode_step_bytes(sequences, spec.vocab_size, logits_bytes)))
    return max(prefill, decode)


def vllm_reserved_bytes(plan: Plan, card_bytes: int) -> int:
    """vLLM colocated on the training card: gpu_memory_utilization x the card's total memory
    (vllm/worker gpu_worker.py requested_memory = total_memory x gpu_memory_utilization),
    reserved once and held for the whole run (sleep mode off)."""
    return int(plan.vllm_gpu_memory_utilization * card_bytes) if plan.generation == "vllm-colocate" else 0

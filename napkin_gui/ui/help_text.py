"""One-sentence tooltips for every plan option and every choice (plan-v1 field names)."""
from __future__ import annotations

FIELD_TIPS: dict[str, str] = {
    "model": "The model to fine-tune: type to search the presets, or open a config.json or a model folder.",
    "method": "Full fine-tuning trains every weight; LoRA trains small adapters; QLoRA adds 4-bit NF4 base weights.",
    "precision": "The dtype the weights are held in; mixed-* keeps fp32 master weights and computes in 16 bit.",
    "lora_r": "LoRA rank: adapter size grows linearly with it (A is r x d_in, B is d_out x r).",
    "lora_alpha": "LoRA scaling numerator (alpha / r scales the update); it costs no memory.",
    "lora_dropout": "Dropout on the adapter input; above 0 it keeps one extra mask per targeted layer.",
    "lora_targets": "Linear layers that get adapters: all-linear, or module names such as q_proj, v_proj.",
    "quant_double": "QLoRA double quantization also quantizes the absmax constants, saving ~0.4 bit per weight.",
    "kbit_prep": "peft's prepare_model_for_kbit_training upcasts every non-quantized weight (embeddings, head) to fp32.",
    "optimizer": "AdamW keeps two fp32 moments per trainable weight; 8-bit variants keep one byte each.",
    "grad_ckpt": "Gradient checkpointing keeps only each block's input and recomputes the rest in backward (~+33% time).",
    "attention": "Attention kernel: sdpa and flash never hold the seq x seq score matrix; eager does.",
    "offload": "Move optimizer states (and parameters) to CPU RAM, trading GPU memory for PCIe traffic.",
    "sharding": "Split model state across the GPUs: ZeRO-2 shards gradients and optimizer, ZeRO-3 / FSDP also weights.",
    "batch_size": "Sequences per micro-batch on each GPU; activations grow linearly with it.",
    "seq_len": "Tokens per sequence; activations grow linearly, eager attention scores quadratically.",
    "grad_accum": "Micro-batches accumulated per optimizer step; raises the effective batch without memory.",
    "gpu": "The GPU each rank runs on: type to search the catalog (memory and hourly price shown).",
    "n_gpus": "Data-parallel GPUs; with sharding the model state is split across them.",
    "dataset_tokens": "Tokens in the training set, for total hours and cost (0: no total).",
    "epochs": "Passes over the dataset.",
    "framework": "Whose model code and training loop run; choosing one fills the fields below with its release defaults.",
    "loss": "How logits and cross-entropy are computed: full-vocabulary logits, chunked, fused with lm_head, or cut.",
    "liger": "Liger kernels patched into the transformers model: RMSNorm, RoPE, SwiGLU and fused linear cross-entropy.",
    "compile": "torch.compile of the model: inductor fuses elementwise chains, so fewer saved tensors and less memory traffic.",
    "activation_offload": "Checkpointed activations wait in pinned host RAM and stream back over PCIe for backward.",
    "optimizer_in_backward": "Each parameter is stepped as soon as its gradient is ready, so no full gradient buffer exists.",
}

CHOICE_TIPS: dict[str, dict[str, str]] = {
    "method": {
        "full": "Train every weight: gradients and optimizer states for all parameters.",
        "lora": "Freeze the base model and train low-rank adapters on the targeted linears.",
        "qlora": "LoRA on a base model stored in 4-bit NF4 (bitsandbytes).",
    },
    "precision": {
        "bf16": "Weights and compute in bfloat16.",
        "fp16": "Weights and compute in float16.",
        "fp32": "Weights and compute in float32 (TF32 matmuls off).",
        "mixed-bf16": "fp32 master weights, autocast compute in bfloat16.",
        "mixed-fp16": "fp32 master weights, autocast compute in float16.",
        "fsdp-mixed-bf16": "FSDP MixedPrecision: fp32 parameter shards, bf16 gathered parameters and compute.",
    },
    "optimizer": {
        "adamw": "torch AdamW (foreach): two fp32 moments per trainable weight.",
        "adamw-8bit": "bitsandbytes 8-bit AdamW: two 1-byte moments per trainable weight.",
        "paged-adamw-8bit": "bitsandbytes paged 8-bit AdamW: states in managed memory that can spill to the host.",
        "paged-adamw": "bitsandbytes paged 32-bit AdamW: two fp32 moments in managed memory that can spill to the host.",
        "sgd": "Plain SGD: no optimizer state.",
        "adafactor": "Adafactor: factored second moment, a row and a column vector per matrix.",
    },
    "attention": {
        "sdpa": "torch scaled_dot_product_attention (flash or memory-efficient kernel when it can).",
        "eager": "Plain matmul + softmax: stores the [batch, heads, seq, seq] score matrix.",
        "flash": "flash-attention 2: never materializes the score matrix.",
    },
    "sharding": {
        "none": "Every GPU holds a full copy of the model state.",
        "fsdp": "PyTorch FSDP: weights, gradients and optimizer states sharded across the GPUs.",
        "zero2": "DeepSpeed ZeRO-2: gradients and optimizer states sharded.",
        "zero3": "DeepSpeed ZeRO-3: weights, gradients and optimizer states sharded.",
    },
    "framework": {
        "transformers": "Hugging Face transformers + peft (Trainer, TRL, accelerate, axolotl).",
        "torchtune": "torchtune recipes: chunked cross-entropy and activation checkpointing by default.",
        "litgpt": "litgpt: fused qkv, chunked lm_head and cross-entropy.",
        "unsloth": "Unsloth: fused LoRA kernels, fused cross-entropy, offloaded gradient checkpointing.",
    },
    "loss": {
        "standard": "Full-vocabulary logits, upcast to fp32 for cross-entropy.",
        "chunked-ce": "Logits in chunks, each upcast to fp32 only inside the loss (torchtune, litgpt).",
        "fused-linear-ce": "lm_head and cross-entropy fused over token chunks; logits never fully materialized.",
        "cut-ce": "Apple's cut cross-entropy: only the correct-token logit and a log-sum-exp are computed.",
    },
    "offload": {
        "none": "Everything stays on the GPU.",
        "optimizer": "Optimizer states live in CPU RAM; the update runs on the CPU.",
        "optimizer+params": "Optimizer states and parameters live in CPU RAM (ZeRO-3 / FSDP only).",
    },
}

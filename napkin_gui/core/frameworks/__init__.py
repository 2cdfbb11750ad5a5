"""Each framework's own module code, one module per framework: what every op of its decoder
block saves for backward and in which dtype, its adapters' dtype and its weight storage.

transformers + peft is the default path (core/memory/activations.py, lora.py, weights.py);
`torchtune.py`, `litgpt.py` and `unsloth.py` say where their code differs, and
core/memory/timeline.py and model_state.py ask `block_saved_bytes_per_token` and friends
here when the plan names that framework.
"""

"""The training side: fp32 teacher, then quantization-aware training with a pluggable loss."""

"""Quantization and export: fake-quant and sparsity-preserving QAT, `export_tflite` with one
table of modes, checks of converted models, microcontroller export."""

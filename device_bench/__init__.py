"""device_bench: benchmark .tflite models on the host, a Raspberry Pi (SSH), Android (adb) or a
microcontroller (TFLite Micro). Imports no TensorFlow: only numpy and ai-edge-litert are needed."""

"""A microcontroller model (recipes/micro_int8.yaml): tiny int8 CNN with int8 I/O, a C array for
TFLite Micro, and a fits / does-not-fit check against the Arduino Nano 33 BLE Sense.

About 30 s on 2 CPU cores; it prints a line per training epoch.

    python examples/micro_int8.py
"""

import device_bench
import edgeprune as ep
from models import compiled, progress, tiny_mcu_cnn

(x, y), (test_x, test_y) = ep.load_digits()
model = compiled(tiny_mcu_cnn(), 5e-3)
model.fit(x, y, epochs=30, batch_size=32, verbose=0, callbacks=[progress("training")])

path = "runs/micro_example/model.tflite"
tflite = ep.export_tflite(model, path, quantize="int8", int8_io=True, representative_data=x[:200])
print(ep.validate_tflite(tflite, model, test_x, test_y))
print(ep.export_micro(tflite, "runs/micro_example/g_digits_model", array_name="g_digits_model"))
result = device_bench.benchmark(path, target="micro", board="nano33ble")
print(result.models[0].micro.verdict)

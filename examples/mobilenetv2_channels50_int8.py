"""Channel pruning that shrinks MobileNetV2 by 50%, then int8
(recipes/mobilenetv2_channels50_int8.yaml). Needs structured pruning
(`prune_low_magnitude(..., structure="channels")` and `ep.shrink`).

About 5 minutes on 2 CPU cores; it prints a line per training epoch.

    python examples/mobilenetv2_channels50_int8.py
"""

import edgeprune as ep
from models import compiled, progress, trained_mobilenet_v2

model, train, test = trained_mobilenet_v2(alpha=0.5)

steps = int(train.cardinality())
pruned = ep.prune_low_magnitude(
    model, structure="channels", criterion="l1", skip_layers=["predictions"],
    pruning_schedule=ep.PolynomialDecay(0.0, 0.5, begin_step=0, end_step=4 * steps, frequency=20))
compiled(pruned, 5e-4).fit(train, epochs=6, verbose=0,
                           callbacks=[ep.UpdatePruningStep(), progress("pruning")])
small = ep.shrink(ep.strip_pruning(pruned))
print(f"parameters {model.count_params():,} -> {small.count_params():,}; "
      f"test accuracy {compiled(small).evaluate(test, verbose=0)[1]:.4f}")
calibration = train.unbatch().batch(1).take(200).map(lambda image, label: image)
ep.export_tflite(small, "runs/mnv2_channels_example.tflite", quantize="int8",
                 representative_data=calibration)

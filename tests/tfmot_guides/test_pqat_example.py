"""tfmot's "Pruning preserving quantization aware training (PQAT) Keras example"
(g3doc/guide/combine/pqat_example.ipynb), cell by cell, with `ep.` in place of
`tfmot.sparsity.keras.` and `tfmot.quantization.keras.`, Keras 3 in place of tf_keras, and the
bundled 8x8 digits (`ep.load_digits()`, already in [0, 1]) in place of MNIST, trained for fewer
epochs. Two calls differ from tfmot's, on purpose:

- tfmot's `quantize_model` does not keep zeros and PQAT needs `quantize_apply(...,
  Default8BitPrunePreserveQuantizeScheme())`; edgeprune's `quantize_model` keeps them by default,
  so the guide's plain QAT model is `quantize_model(..., preserve_sparsity=False)` and its PQAT
  model `quantize_apply(..., preserve_sparsity=True)`.
- A quantization-aware model converts with `ep.export_tflite` (full int8 on the grid it trained
  on, calibrated on the 1,000 images the guide calibrates its post-training model with), not
  `TFLiteConverter.from_keras_model`, which would keep the fake-quantization arithmetic as float
  operations.
"""

import os
import tempfile
import zipfile

import keras
import numpy as np
import tensorflow as tf

import edgeprune as ep


def print_model_weights_sparsity(model):
    sparsities = {}
    for layer in model.layers:
        if isinstance(layer, keras.layers.Wrapper):
            weights = layer.trainable_weights
        else:
            weights = layer.weights
        for weight in weights:
            # ignore auxiliary quantization weights
            if "quantize_layer" in weight.name:
                continue
            weight_size = weight.numpy().size
            zero_num = np.count_nonzero(weight == 0)
            print(
                f"{weight.name}: {zero_num/weight_size:.2%} sparsity ",
                f"({zero_num}/{weight_size})",
            )
            sparsities[weight.path] = zero_num / weight_size
    return sparsities


def get_gzipped_model_size(file):
    # It returns the size of the gzipped model in kilobytes.
    _, zipped_file = tempfile.mkstemp('.zip')
    with zipfile.ZipFile(zipped_file, 'w', compression=zipfile.ZIP_DEFLATED) as f:
        f.write(file)

    return os.path.getsize(zipped_file)/1000


def eval_model(interpreter, test_images, test_labels):
    input_index = interpreter.get_input_details()[0]["index"]
    output_index = interpreter.get_output_details()[0]["index"]

    # Run predictions on every image in the "test" dataset.
    prediction_digits = []
    for test_image in test_images:
        # Pre-processing: add batch dimension and convert to float32 to match with
        # the model's input data format.
        test_image = np.expand_dims(test_image, axis=0).astype(np.float32)
        interpreter.set_tensor(input_index, test_image)

        # Run inference.
        interpreter.invoke()

        # Post-processing: remove batch dimension and find the digit with highest
        # probability.
        output = interpreter.tensor(output_index)
        digit = np.argmax(output()[0])
        prediction_digits.append(digit)

    # Compare prediction results with ground truth labels to calculate accuracy.
    prediction_digits = np.array(prediction_digits)
    accuracy = (prediction_digits == test_labels).mean()
    return accuracy


def kernel_sparsities(sparsities):
    return [value for path, value in sparsities.items() if path.endswith("kernel")]


def test_pruning_preserving_quantization_aware_training(tmp_path):
    keras.utils.set_random_seed(0)
    (train_images, train_labels), (test_images, test_labels) = ep.load_digits()
    train_images, test_images = train_images[..., 0], test_images[..., 0]

    model = keras.Sequential([
        keras.layers.InputLayer(input_shape=(8, 8)),
        keras.layers.Reshape(target_shape=(8, 8, 1)),
        keras.layers.Conv2D(filters=12, kernel_size=(3, 3),
                            activation=tf.nn.relu),
        keras.layers.MaxPooling2D(pool_size=(2, 2)),
        keras.layers.Flatten(),
        keras.layers.Dense(10)
    ])

    model.compile(optimizer='adam',
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=['accuracy'])

    model.fit(
        train_images,
        train_labels,
        validation_split=0.1,
        epochs=20,  # the guide: 10 epochs of MNIST
        verbose=0,
    )

    _, baseline_model_accuracy = model.evaluate(
        test_images, test_labels, verbose=0)

    print('Baseline test accuracy:', baseline_model_accuracy)

    # --- Prune and fine-tune the model to 50% sparsity ---
    prune_low_magnitude = ep.prune_low_magnitude

    pruning_params = {
        'pruning_schedule': ep.ConstantSparsity(0.5, begin_step=0, frequency=100)
    }

    callbacks = [
        ep.UpdatePruningStep()
    ]

    pruned_model = prune_low_magnitude(model, **pruning_params)

    # Use smaller learning rate for fine-tuning
    opt = keras.optimizers.Adam(learning_rate=1e-5)

    pruned_model.compile(
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        optimizer=opt,
        metrics=['accuracy'])

    pruned_model.summary()

    pruned_model.fit(
        train_images,
        train_labels,
        epochs=3,
        validation_split=0.1,
        callbacks=callbacks,
        verbose=0)

    stripped_pruned_model = ep.strip_pruning(pruned_model)

    assert all(abs(s - 0.5) < 0.01 for s in kernel_sparsities(
        print_model_weights_sparsity(stripped_pruned_model)))

    _, pruned_model_accuracy = pruned_model.evaluate(
        test_images, test_labels, verbose=0)

    print('Baseline test accuracy:', baseline_model_accuracy)
    print('Pruned test accuracy:', pruned_model_accuracy)

    # --- Apply QAT and PQAT and check the effect on model sparsity ---
    qat_model = ep.quantize_model(stripped_pruned_model, preserve_sparsity=False)

    qat_model.compile(optimizer='adam',
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      metrics=['accuracy'])
    print('Train qat model:')
    qat_model.fit(train_images, train_labels, batch_size=128, epochs=1, validation_split=0.1,
                  verbose=0)

    quant_aware_annotate_model = ep.quantize_annotate_model(
        stripped_pruned_model)
    pqat_model = ep.quantize_apply(
        quant_aware_annotate_model,
        preserve_sparsity=True)

    pqat_model.compile(optimizer='adam',
                       loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                       metrics=['accuracy'])
    print('Train pqat model:')
    pqat_model.fit(train_images, train_labels, batch_size=128, epochs=1, validation_split=0.1,
                   verbose=0)

    print("QAT Model sparsity:")
    qat_sparsities = kernel_sparsities(print_model_weights_sparsity(qat_model))
    print("PQAT Model sparsity:")
    pqat_sparsities = kernel_sparsities(print_model_weights_sparsity(pqat_model))
    assert all(s < 0.1 for s in qat_sparsities)  # plain QAT trains the zeros away
    assert all(abs(s - 0.5) < 0.01 for s in pqat_sparsities)

    # --- See compression benefits of PQAT model ---
    qat_model_file = str(tmp_path / 'qat_model.tflite')
    ep.export_tflite(qat_model, qat_model_file, representative_data=train_images[:1000])

    pqat_model_file = str(tmp_path / 'pqat_model.tflite')
    ep.export_tflite(pqat_model, pqat_model_file, representative_data=train_images[:1000])

    qat_size = get_gzipped_model_size(qat_model_file)
    pqat_size = get_gzipped_model_size(pqat_model_file)
    print("QAT model size: ", qat_size, ' KB')
    print("PQAT model size: ", pqat_size, ' KB')
    assert pqat_size < qat_size

    # --- See the persistence of accuracy from TF to TFLite ---
    interpreter = tf.lite.Interpreter(pqat_model_file)
    interpreter.allocate_tensors()

    pqat_test_accuracy = eval_model(interpreter, test_images, test_labels)

    print('Pruned and quantized TFLite test_accuracy:', pqat_test_accuracy)
    print('Pruned TF test accuracy:', pruned_model_accuracy)
    assert pqat_test_accuracy > pruned_model_accuracy - 0.03

    # --- Post-training quantization, for comparison ---
    def mnist_representative_data_gen():
        for image in train_images[:1000]:
            image = np.expand_dims(image, axis=0).astype(np.float32)
            yield [image]

    converter = tf.lite.TFLiteConverter.from_keras_model(stripped_pruned_model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = mnist_representative_data_gen
    post_training_tflite_model = converter.convert()
    post_training_model_file = str(tmp_path / 'post_training_model.tflite')
    with open(post_training_model_file, 'wb') as f:
        f.write(post_training_tflite_model)

    interpreter = tf.lite.Interpreter(post_training_model_file)
    interpreter.allocate_tensors()

    post_training_test_accuracy = eval_model(interpreter, test_images, test_labels)

    print('PQAT TFLite test_accuracy:', pqat_test_accuracy)
    print('Post-training (no fine-tuning) TF test accuracy:', post_training_test_accuracy)
    assert post_training_test_accuracy > 0.8

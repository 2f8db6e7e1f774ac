"""tfmot's "Pruning in Keras example" (g3doc/guide/pruning/pruning_with_keras.ipynb), cell by cell,
with `ep.` in place of `tfmot.sparsity.keras.`, Keras 3 in place of tf_keras, and the bundled 8x8
digits (`ep.load_digits()`, already scaled to [0, 1]) in place of MNIST. Digits has 1/50 of
MNIST's images, so batches are smaller (16, not 128) and training longer, to give
`PolynomialDecay(frequency=100)` about the guide's number of steps; lines changed for that say
so. The guide's model has 1,210 weights: at 80% sparsity its 108-weight convolution keeps 22, so
on digits it loses about 5 points where on MNIST it loses one."""

import os
import tempfile
import zipfile

import keras
import numpy as np
import tensorflow as tf

import edgeprune as ep


def get_gzipped_model_size(file):
    # Returns size of gzipped model, in bytes.
    _, zipped_file = tempfile.mkstemp('.zip')
    with zipfile.ZipFile(zipped_file, 'w', compression=zipfile.ZIP_DEFLATED) as f:
        f.write(file)

    return os.path.getsize(zipped_file)


def evaluate_model(interpreter, test_images, test_labels):
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


def test_pruning_in_keras_example():
    keras.utils.set_random_seed(0)
    # Load the digits (the guide: MNIST, 28x28, divided by 255).
    (train_images, train_labels), (test_images, test_labels) = ep.load_digits()
    train_images, test_images = train_images[..., 0], test_images[..., 0]

    # Define the model architecture.
    model = keras.Sequential([
        keras.layers.InputLayer(input_shape=(8, 8)),
        keras.layers.Reshape(target_shape=(8, 8, 1)),
        keras.layers.Conv2D(filters=12, kernel_size=(3, 3), activation='relu'),
        keras.layers.MaxPooling2D(pool_size=(2, 2)),
        keras.layers.Flatten(),
        keras.layers.Dense(10)
    ])

    # Train the digit classification model
    model.compile(optimizer='adam',
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=['accuracy'])

    model.fit(
        train_images,
        train_labels,
        epochs=20,  # the guide: 4 epochs of MNIST
        validation_split=0.1,
        verbose=0,
    )

    _, baseline_model_accuracy = model.evaluate(
        test_images, test_labels, verbose=0)

    print('Baseline test accuracy:', baseline_model_accuracy)

    _, keras_file = tempfile.mkstemp('.h5')
    keras.models.save_model(model, keras_file, include_optimizer=False)
    print('Saved baseline model to:', keras_file)

    # --- Fine-tune pre-trained model with pruning ---
    prune_low_magnitude = ep.prune_low_magnitude

    # Compute end step to finish pruning after 8 epochs of batches of 16: 608 steps (the guide: 2
    # epochs of MNIST in batches of 128, 844 steps).
    batch_size = 16
    epochs = 8
    validation_split = 0.1  # 10% of training set will be used for validation set.

    num_images = train_images.shape[0] * (1 - validation_split)
    end_step = np.ceil(num_images / batch_size).astype(np.int32) * epochs

    # Define model for pruning.
    pruning_params = {
        'pruning_schedule': ep.PolynomialDecay(initial_sparsity=0.50,
                                               final_sparsity=0.80,
                                               begin_step=0,
                                               end_step=end_step)
    }

    model_for_pruning = prune_low_magnitude(model, **pruning_params)

    # `prune_low_magnitude` requires a recompile.
    model_for_pruning.compile(optimizer='adam',
                              loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                              metrics=['accuracy'])

    model_for_pruning.summary()

    logdir = tempfile.mkdtemp()

    callbacks = [
        ep.UpdatePruningStep(),
        ep.PruningSummaries(log_dir=logdir),
    ]

    model_for_pruning.fit(train_images, train_labels,
                          batch_size=batch_size, epochs=epochs,
                          validation_split=validation_split,
                          callbacks=callbacks, verbose=0)

    _, model_for_pruning_accuracy = model_for_pruning.evaluate(
        test_images, test_labels, verbose=0)

    print('Baseline test accuracy:', baseline_model_accuracy)
    print('Pruned test accuracy:', model_for_pruning_accuracy)
    # "minimal loss in test accuracy after pruning, compared to the baseline"
    assert baseline_model_accuracy > 0.9
    assert model_for_pruning_accuracy > baseline_model_accuracy - 0.1

    # --- Create 3x smaller models from pruning ---
    model_for_export = ep.strip_pruning(model_for_pruning)

    _, pruned_keras_file = tempfile.mkstemp('.h5')
    keras.models.save_model(model_for_export, pruned_keras_file, include_optimizer=False)
    print('Saved pruned Keras model to:', pruned_keras_file)

    converter = tf.lite.TFLiteConverter.from_keras_model(model_for_export)
    pruned_tflite_model = converter.convert()

    _, pruned_tflite_file = tempfile.mkstemp('.tflite')

    with open(pruned_tflite_file, 'wb') as f:
        f.write(pruned_tflite_model)

    print('Saved pruned TFLite model to:', pruned_tflite_file)

    baseline_size = get_gzipped_model_size(keras_file)
    pruned_keras_size = get_gzipped_model_size(pruned_keras_file)
    pruned_tflite_size = get_gzipped_model_size(pruned_tflite_file)
    print("Size of gzipped baseline Keras model: %.2f bytes" % baseline_size)
    print("Size of gzipped pruned Keras model: %.2f bytes" % pruned_keras_size)
    print("Size of gzipped pruned TFlite model: %.2f bytes" % pruned_tflite_size)
    kernels = [layer.kernel.numpy() for layer in model_for_export.layers
               if hasattr(layer, "kernel")]
    assert all(abs(np.mean(k == 0) - 0.8) < 0.01 for k in kernels)
    # This model has 1,210 weights, so file headers dominate: smaller, not 3x smaller.
    assert pruned_keras_size < baseline_size and pruned_tflite_size < baseline_size

    # --- Create a 10x smaller model from combining pruning and quantization ---
    converter = tf.lite.TFLiteConverter.from_keras_model(model_for_export)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    quantized_and_pruned_tflite_model = converter.convert()

    _, quantized_and_pruned_tflite_file = tempfile.mkstemp('.tflite')

    with open(quantized_and_pruned_tflite_file, 'wb') as f:
        f.write(quantized_and_pruned_tflite_model)

    print('Saved quantized and pruned TFLite model to:', quantized_and_pruned_tflite_file)
    quantized_size = get_gzipped_model_size(quantized_and_pruned_tflite_file)
    print("Size of gzipped baseline Keras model: %.2f bytes" % baseline_size)
    print("Size of gzipped pruned and quantized TFlite model: %.2f bytes" % quantized_size)
    assert quantized_size < pruned_tflite_size

    # --- See persistence of accuracy from TF to TFLite ---
    interpreter = tf.lite.Interpreter(model_content=quantized_and_pruned_tflite_model)
    interpreter.allocate_tensors()

    test_accuracy = evaluate_model(interpreter, test_images, test_labels)

    print('Pruned and quantized TFLite test_accuracy:', test_accuracy)
    print('Pruned TF test accuracy:', model_for_pruning_accuracy)
    assert abs(test_accuracy - model_for_pruning_accuracy) < 0.02

"""tfmot's "Pruning comprehensive guide" (g3doc/guide/pruning/comprehensive_guide.ipynb), cell by
cell, with `ep.` in place of `tfmot.sparsity.keras.` and Keras 3 in place of tf_keras. Lines that
differ for Keras 3 itself (not for edgeprune) say so. Each test is one section of the guide and
asserts what the guide shows."""

import os
import tempfile
import zipfile

import keras
import numpy as np
import pytest
import tensorflow as tf

import edgeprune as ep

# --- Setup (the guide's first cell) ---
input_shape = [20]
rng = np.random.default_rng(0)
x_train = rng.standard_normal((1, 20)).astype(np.float32)
y_train = keras.utils.to_categorical(rng.standard_normal(1), num_classes=20)


def setup_model():
    model = keras.Sequential([
        keras.layers.Dense(20, input_shape=input_shape),
        keras.layers.Flatten()
    ])
    return model


def setup_pretrained_weights():
    model = setup_model()

    model.compile(
        loss=keras.losses.categorical_crossentropy,
        optimizer='adam',
        metrics=['accuracy']
    )

    model.fit(x_train, y_train, verbose=0)

    # Keras 3 writes weights only to a "*.weights.h5" file (the guide: mkstemp('.tf')).
    _, pretrained_weights = tempfile.mkstemp('.weights.h5')

    model.save_weights(pretrained_weights)

    return pretrained_weights


def get_gzipped_model_size(model):
    # Returns size of gzipped model, in bytes.
    _, keras_file = tempfile.mkstemp('.h5')
    model.save(keras_file, include_optimizer=False)

    _, zipped_file = tempfile.mkstemp('.zip')
    with zipfile.ZipFile(zipped_file, 'w', compression=zipfile.ZIP_DEFLATED) as f:
        f.write(keras_file)

    return os.path.getsize(zipped_file)


@pytest.fixture(scope="module")
def pretrained_weights():
    setup_model()
    return setup_pretrained_weights()


def wrapped_kinds(model):
    return [type(w.layer).__name__ for w in ep.PruningController(model).wrappers]


def test_prune_whole_model(pretrained_weights):
    base_model = setup_model()
    base_model.load_weights(pretrained_weights)  # optional but recommended.

    model_for_pruning = ep.prune_low_magnitude(base_model)

    model_for_pruning.summary()
    assert wrapped_kinds(model_for_pruning) == ["Dense"]


def test_prune_some_layers_with_clone_model(pretrained_weights):
    # Create a base model
    base_model = setup_model()
    base_model.load_weights(pretrained_weights)  # optional but recommended for model accuracy

    # Helper function uses `prune_low_magnitude` to make only the
    # Dense layers train with pruning.
    def apply_pruning_to_dense(layer):
        if isinstance(layer, keras.layers.Dense):
            return ep.prune_low_magnitude(layer)
        return layer

    # Use `keras.models.clone_model` to apply `apply_pruning_to_dense`
    # to the layers of the model.
    model_for_pruning = keras.models.clone_model(
        base_model,
        clone_function=apply_pruning_to_dense,
    )

    model_for_pruning.summary()
    print(base_model.layers[0].name)
    assert [type(layer).__name__ for layer in model_for_pruning.layers] == [
        "PruneLowMagnitude", "Flatten"]


def test_prune_layers_while_defining_the_model():
    # Functional example.
    i = keras.Input(shape=(20,))
    x = ep.prune_low_magnitude(keras.layers.Dense(10))(i)
    o = keras.layers.Flatten()(x)
    model_for_pruning = keras.Model(inputs=i, outputs=o)

    model_for_pruning.summary()
    assert wrapped_kinds(model_for_pruning) == ["Dense"]

    # Sequential example.
    model_for_pruning = keras.Sequential([
        ep.prune_low_magnitude(keras.layers.Dense(20, input_shape=input_shape)),
        keras.layers.Flatten()
    ])

    model_for_pruning.summary()
    assert model_for_pruning.built and wrapped_kinds(model_for_pruning) == ["Dense"]


def test_prune_a_custom_layer_that_says_what_to_prune():
    class MyDenseLayer(keras.layers.Dense, ep.PrunableLayer):

        def get_prunable_weights(self):
            # Prune bias also, though that usually harms model accuracy too much.
            return [self.kernel, self.bias]

    # Use `prune_low_magnitude` to make the `MyDenseLayer` layer train with pruning.
    model_for_pruning = keras.Sequential([
        ep.prune_low_magnitude(MyDenseLayer(20, input_shape=input_shape)),
        keras.layers.Flatten()
    ])

    model_for_pruning.summary()
    wrapper, = ep.PruningController(model_for_pruning).wrappers
    assert [w.name for w in wrapper.pruned_weights] == ["kernel", "bias"]


def test_train_with_model_fit_and_summaries(pretrained_weights):
    # Define the model.
    base_model = setup_model()
    base_model.load_weights(pretrained_weights)  # optional but recommended for model accuracy
    model_for_pruning = ep.prune_low_magnitude(base_model)

    log_dir = tempfile.mkdtemp()
    callbacks = [
        ep.UpdatePruningStep(),
        # Log sparsity and other metrics in Tensorboard.
        ep.PruningSummaries(log_dir=log_dir)
    ]

    model_for_pruning.compile(
        loss=keras.losses.categorical_crossentropy,
        optimizer='adam',
        metrics=['accuracy']
    )

    model_for_pruning.fit(
        x_train,
        y_train,
        callbacks=callbacks,
        epochs=2,
        verbose=0,
    )
    assert os.listdir(os.path.join(log_dir, "metrics"))


def test_custom_training_loop_calling_the_callbacks(pretrained_weights):
    # Define the model.
    base_model = setup_model()
    base_model.load_weights(pretrained_weights)  # optional but recommended for model accuracy
    model_for_pruning = ep.prune_low_magnitude(base_model)

    # Boilerplate
    loss = keras.losses.categorical_crossentropy
    optimizer = keras.optimizers.Adam()
    log_dir = tempfile.mkdtemp()
    unused_arg = -1
    epochs = 2
    batches = 1  # example is hardcoded so that the number of batches cannot change.

    # Non-boilerplate.
    model_for_pruning.optimizer = optimizer
    step_callback = ep.UpdatePruningStep()
    step_callback.set_model(model_for_pruning)
    log_callback = ep.PruningSummaries(log_dir=log_dir)  # Log sparsity and other metrics in Tensorboard.
    log_callback.set_model(model_for_pruning)

    step_callback.on_train_begin()  # run pruning callback
    for _ in range(epochs):
        log_callback.on_epoch_begin(epoch=unused_arg)  # run pruning callback
        for _ in range(batches):
            step_callback.on_train_batch_begin(batch=unused_arg)  # run pruning callback

            with tf.GradientTape() as tape:
                logits = model_for_pruning(x_train, training=True)
                loss_value = loss(y_train, logits)
                grads = tape.gradient(loss_value, model_for_pruning.trainable_variables)
                optimizer.apply_gradients(zip(grads, model_for_pruning.trainable_variables))

        step_callback.on_epoch_end(batch=unused_arg)  # run pruning callback

    assert ep.PruningController(model_for_pruning).wrappers[0].current_step() == 2
    assert os.listdir(os.path.join(log_dir, "metrics"))


def test_checkpoint_and_deserialize_keep_the_pruning_step(pretrained_weights):
    # Define the model.
    base_model = setup_model()
    base_model.load_weights(pretrained_weights)  # optional but recommended for model accuracy
    model_for_pruning = ep.prune_low_magnitude(base_model)

    _, keras_model_file = tempfile.mkstemp('.h5')

    # Checkpoint: saving the optimizer is necessary (include_optimizer=True is the default).
    model_for_pruning.save(keras_model_file, include_optimizer=True)

    # Deserialize model.
    with ep.prune_scope():
        loaded_model = keras.models.load_model(keras_model_file)

    loaded_model.summary()
    assert wrapped_kinds(loaded_model) == ["Dense"]
    for saved, loaded in zip(model_for_pruning.weights, loaded_model.weights):
        np.testing.assert_array_equal(saved.numpy(), loaded.numpy())


def test_export_with_size_compression(pretrained_weights):
    # Define the model.
    base_model = setup_model()
    base_model.load_weights(pretrained_weights)  # optional but recommended for model accuracy
    model_for_pruning = ep.prune_low_magnitude(base_model)

    # Typically you train the model here.

    with pytest.warns(UserWarning, match="never ran"):  # edgeprune says the model is not sparse
        model_for_export = ep.strip_pruning(model_for_pruning)

    print("final model")
    model_for_export.summary()

    print("\n")
    without = get_gzipped_model_size(model_for_pruning)
    with_stripping = get_gzipped_model_size(model_for_export)
    print("Size of gzipped pruned model without stripping: %.2f bytes" % without)
    print("Size of gzipped pruned model with stripping: %.2f bytes" % with_stripping)
    assert with_stripping < without
    assert [type(layer).__name__ for layer in model_for_export.layers] == ["Dense", "Flatten"]


def test_block_sparsity_for_hardware():
    base_model = setup_model()

    # For using intrinsics on a CPU with 128-bit registers, together with 8-bit
    # quantized weights, a 1x16 block size is nice because the block perfectly
    # fits into the register.
    pruning_params = {'block_size': [1, 16]}
    model_for_pruning = ep.prune_low_magnitude(base_model, **pruning_params)

    model_for_pruning.summary()
    assert ep.PruningController(model_for_pruning).wrappers[0].block_size == (1, 16)

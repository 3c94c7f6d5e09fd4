"""The Keras CNN snippet, trained by Lathe on scikit-learn's digits (8×8 images), exported to ONNX.

    python3 examples/python/keras_digits.py [digits.onnx]

Only the imports differ from a Keras script.
"""

import sys

import numpy as np
from sklearn.datasets import load_digits

from lathe.keras.layers import Conv2D, Dense, Flatten, MaxPooling2D
from lathe.keras.models import Sequential

digits = load_digits()
x = (digits.images / 16.0).astype(np.float32)[..., None]   # (N, 8, 8, 1), channels-last
y = digits.target
order = np.random.default_rng(0).permutation(len(x))
cut = int(0.8 * len(x))
x_train, y_train, x_val, y_val = x[order[:cut]], y[order[:cut]], x[order[cut:]], y[order[cut:]]

model = Sequential()
model.add(Conv2D(32, (3, 3), activation='relu', input_shape=(8, 8, 1)))
model.add(MaxPooling2D((2, 2)))
model.add(Flatten())
model.add(Dense(128, activation='relu'))
model.add(Dense(10, activation='softmax'))
model.compile(optimizer='adam', loss='sparse_categorical_crossentropy', metrics=['accuracy'])
model.fit(x_train, y_train, epochs=10, batch_size=32, validation_data=(x_val, y_val))
loss, accuracy = model.evaluate(x_val, y_val)
print(f"held-out loss {loss:.4f}, accuracy {accuracy:.4f}")
model.save(sys.argv[1] if len(sys.argv) > 1 else "digits.onnx")

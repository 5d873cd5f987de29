"""Process-wide test settings shared by every test module."""

import os

# TFX 1.16 and TFMA 0.47 need Keras 2; this must be set before TensorFlow is
# imported anywhere in the test process.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

"""Training and evaluation of the default model (runs on TensorFlow or JAX backends)."""

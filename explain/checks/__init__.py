"""Run-time checks on one explanation: is the input like the training data, does the decision need the red region.

numpy, and OpenCV for the region check's blur and head mask, on top of the
engine's own outputs (no scikit-learn, no research code): :mod:`.input_check`
scores the features of the same forward pass that made the map; :mod:`.region`
runs one extra forward pass.
"""

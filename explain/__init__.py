"""Grad-CAM pipeline: decode -> preprocess -> model -> CAM -> overlay."""

"""The Gradio app's pieces below ``app.py``: texts, result files, examples, the batch run."""

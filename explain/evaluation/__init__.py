"""Evaluation tools: the dataset split, lesion annotations and the faithfulness/lesion audit.

Research code: the runtime never imports this package.
"""

"""Import TensorFlow without its C++ start-up lines on stderr.

TensorFlow 2.21 logs through absl from C++ ("oneDNN custom operations are
on", "Could not find cuda drivers", "All log messages before
absl::InitializeLog() ...") while it is imported and when it first runs an
op; TF_CPP_MIN_LOG_LEVEL no longer silences those lines. They are written to
file descriptor 2 directly, so the only way to keep them off a start-up
screen is to point that descriptor elsewhere for the duration.
"""

from __future__ import annotations

import os
import sys


def import_tensorflow(quiet: bool = True):
    """Import TensorFlow (and run one op); with ``quiet``, its C++ stderr output during that is dropped.

    Python exceptions still propagate (their tracebacks are printed after
    stderr is restored). Returns the module, or None when TensorFlow is not
    installed (Keras on another backend).
    """
    if not quiet or "tensorflow" in sys.modules:
        return _import()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.stderr.flush()
    saved = os.dup(2)
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 2)
        return _import(run_op=True)
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


def _import(run_op: bool = False):
    try:
        import tensorflow as tf
    except ImportError:
        return None
    if run_op:
        tf.constant(0.0).numpy()  # the device set-up logs on first use, not at import
    return tf

"""Reading a Keras model: finding the target layer and replaying the graph to capture activations and logits."""

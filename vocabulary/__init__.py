"""The project's vocabulary, the bottom layer: the config schema, the outputs contract, GPU
facts, errors and the stack-file reader. Every other part imports it; it imports none of them."""

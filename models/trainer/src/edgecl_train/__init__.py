"""edgecl_train: continual training of edgecl backbones and their ONNX export with model cards."""
__version__ = "0.1.0"

"Neural-network quantization with PyTorch, taught and implemented one notebook at a time."
__version__ = "0.0.2"

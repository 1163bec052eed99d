"""Inference: the Detector (PyTorch or ONNX Runtime), ONNX export and the ONNX Runtime student."""

"""Networks as files: safe readers for every format weights come in (never running a file's code),
and the user's own module named by its code.

- `formats`: ``.pt`` / ``.pth`` / ``.bin`` (``weights_only``), ``.safetensors``, ``.npz``, and the
  layout of modscope's own checkpoints;
- `archives`: ``.pt2`` (``torch.export``) and TorchScript archives, read without pickle or exec;
- `onnx_model` (+ `onnx_ops`, and `onnx_library`: onnx2torch's converters for the ops outside
  modscope's table) and `keras_h5` (+ `keras_layers`): ONNX models and Keras HDF5 / ``.keras``
  files rebuilt as torch modules to be traced (`padding`: their padding rules and recurrent
  layers); modscope's tables come first because they read more files exactly
  (experiments/converters/compare.json);
- `user_model`: ``package.module:factory`` plus a weights file, and example inputs.
"""

__all__: list[str] = []

"""ONNX export of trained feed-forward models, and inference with onnxruntime.

The exported graph takes ``input`` (B, 3, H, W) float32 RGB in [0, 1] and returns ``output`` (B, 3, s·H, s·W)
(s the model's scale, 1 for style networks), with batch, height and width dynamic: the pad-to-a-multiple-of-4
and crop-back of :class:`~stylegram.nets.transformer.TransformerNet` are traced as shape arithmetic, not frozen
to the export size. The model's :class:`~stylegram.feedforward.model.ModelInfo` JSON is stored in the ONNX
metadata under ``"stylegram"``.

:func:`export_onnx` checks its own result: onnxruntime's output on a test image of a size different from the
tracing size must match PyTorch's within ``tolerance``, else :class:`ExportError`.
"""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from stylegram.core import images
from stylegram.core.atomic import check_writable
from stylegram.core.errors import UsageError
from stylegram.core.options import Options, option
from stylegram.feedforward.model import METADATA_KEY, FastStyleModel, ModelError, ModelInfo, load_model

TRACE_SIZE = (64, 64)
CHECK_SIZE = (37, 50)  # odd and not a multiple of 4: exercises the dynamic pad and crop
MIN_OPSET = 11  # opsets 7–10 cannot express a padding whose size depends on the input (the pad to a multiple of 4)
MAX_OPSET = 23  # the newest the pinned torch exporter writes


class ExportError(ModelError):
    """The export failed or its result does not match PyTorch."""


@dataclass(frozen=True)
class ExportOptions(Options):
    """How to export a model to ONNX."""

    opset: int = option(17, "ONNX opset version", min=MIN_OPSET, max=MAX_OPSET)


@dataclass(frozen=True)
class ExportReport:
    path: Path
    max_abs_diff: float  # between onnxruntime and PyTorch on the check image
    checked: tuple[int, int]  # (height, width) of the check image


def onnx_bytes(model: FastStyleModel, opset: int = 17) -> bytes:
    """The model as a serialised ONNX graph with dynamic batch, height and width."""
    import onnx

    ExportOptions(opset=opset)  # refuses an opset the graph cannot be written in, before tracing
    net = model.runner.to("cpu").eval()  # what PyTorch inference runs (for super-resolution, the folded copy)
    example = torch.rand(1, 3, *TRACE_SIZE, generator=torch.Generator().manual_seed(0))
    buffer = io.BytesIO()
    try:
        with warnings.catch_warnings():
            # The tracer warns about the Python-level shape checks in forward; they hold for every input we accept.
            warnings.simplefilter("ignore")
            torch.onnx.export(
                net, (example,), buffer,  # type: ignore[arg-type]  # a file object works as well as a path
                input_names=["input"], output_names=["output"], opset_version=opset,
                dynamic_axes={"input": {0: "batch", 2: "height", 3: "width"},
                              "output": {0: "batch", 2: "height", 3: "width"}},
                dynamo=False,  # the TorchScript exporter: no onnxscript dependency
            )
    except Exception as e:  # the exporter raises several types; none is the user's to fix but opset
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ExportError(f"ONNX export failed at opset {opset}: {first}") from None
    finally:
        model.runner.to(model.device)
    proto = onnx.load_from_string(buffer.getvalue())
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, model.info.to_json()
    data: bytes = proto.SerializeToString()
    return data


def export_onnx(model: FastStyleModel, path: str | os.PathLike[str], *, opset: int = 17,
                tolerance: float = 1e-4, inputs: Sequence[str | os.PathLike[str]] = ()) -> ExportReport:
    """Write ``model`` as ONNX to ``path`` (atomically) after checking onnxruntime against PyTorch.

    The place is checked first (a UsageError if it cannot be written or is one of ``inputs``).
    """
    if not os.fspath(path).lower().endswith(".onnx"):
        raise UsageError(f"the ONNX output must end in .onnx, got {os.fspath(path)!r}")
    check_writable(path, inputs, "ONNX file")
    data = onnx_bytes(model, opset)
    runtime = OnnxStyleModel(data, model.info)
    x = torch.rand(2, 3, *CHECK_SIZE, generator=torch.Generator().manual_seed(1))
    # The network alone: histogram matching of super-resolved outputs is post-processing, outside the graph.
    expected = model.stylize_tensor(x, match_histogram=False)
    got = runtime(x)
    if got.shape != expected.shape:
        raise ExportError(f"ONNX output shape {tuple(got.shape)} differs from PyTorch's {tuple(expected.shape)}")
    diff = float((got - expected).abs().max())
    if not diff <= tolerance:
        raise ExportError(f"onnxruntime differs from PyTorch by {diff:.2e} (> {tolerance:.0e})")
    target = images.atomic_write_bytes(path, data)
    return ExportReport(target, diff, CHECK_SIZE)


class OnnxStyleModel:
    """An exported model run by onnxruntime (CPU): RGB (B, 3, H, W) in [0, 1] → (B, 3, s·H, s·W)."""

    def __init__(self, data: bytes, info: ModelInfo) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only: the library never prints
        self.session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
        self.info = info

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> OnnxStyleModel:
        """From an ``.onnx`` file written by :func:`export_onnx`, or a safetensors model (exported in memory)."""
        name = os.fspath(path)
        if not name.lower().endswith(".onnx"):
            model = load_model(path)
            return cls(onnx_bytes(model), model.info)
        try:
            import onnx

            proto = onnx.load_from_string(Path(path).read_bytes())
        except FileNotFoundError:
            raise ModelError(f"model file not found: {name}") from None
        except Exception as e:  # protobuf decode errors come in several types
            raise ModelError(f"{name}: not a readable ONNX file ({type(e).__name__})") from None
        meta = {p.key: p.value for p in proto.metadata_props}
        if METADATA_KEY not in meta:
            raise ModelError(f"{name}: ONNX file without stylegram metadata; was it written by `stylegram export`?")
        return cls(proto.SerializeToString(), ModelInfo.from_json(meta[METADATA_KEY], name))

    def __call__(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"expected an RGB batch (B, 3, H, W), got {tuple(x.shape)}")
        feed: dict[str, Any] = {"input": np.ascontiguousarray(x.detach().cpu().float().numpy())}
        (out,) = self.session.run(["output"], feed)
        return torch.from_numpy(out).to(x.device, x.dtype)

"""Runs an ONNX model with onnxruntime, for pillar-nn's onnx_runtime test.

Usage: python onnxruntime_run.py MODEL.onnx < input.json > output.json
where both JSON documents are {"shape": [...], "data": [...]} (row-major float32).
Exits with status 3 and a message on stderr when onnxruntime or numpy is missing.
"""

import json
import sys

try:
    import numpy as np
    import onnxruntime as ort
except ImportError as e:
    print(f"onnxruntime_run.py: {e}", file=sys.stderr)
    sys.exit(3)


def main():
    x = json.load(sys.stdin)
    data = np.asarray(x["data"], dtype=np.float32).reshape(x["shape"])
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    session = ort.InferenceSession(sys.argv[1], opts, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    (y,) = session.run(None, {name: data})
    json.dump({"shape": list(y.shape), "data": [float(v) for v in y.flatten()]}, sys.stdout)


if __name__ == "__main__":
    main()

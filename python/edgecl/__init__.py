"""edgecl: on-device class-incremental learning over a frozen ONNX backbone, from Python.

A `Learner` is a state file and its backbone, opened together. It learns new classes from a few
captures (file paths, encoded image bytes, or H x W x 3 uint8 RGB numpy arrays, as picamera2 gives
them and OpenCV after BGR->RGB), classifies frames, and forgets, renames and merges classes. The
state file is the CLI's: `edgecl classify --state S` reads what Python learnt, and the other way round.

    import edgecl
    learner = edgecl.Learner("objects.edgecl")          # model: the state's, else the default
    learner.learn("mug", ["mug1.jpg", "mug2.jpg"])
    print(learner.classify(frame))                      # Prediction(label='mug', ...)

Errors from the library raise `edgecl.Error` (or its subclasses `UnknownClassError`, also a
`LookupError`, and `LockedError`, also a `TimeoutError`) with the library's message; arguments of the
wrong type or shape raise `TypeError` / `ValueError`.
"""

from ._edgecl import (
    ClassInfo,
    Error,
    Info,
    Learner,
    LockedError,
    Prediction,
    Ranked,
    UnknownClassError,
    __version__,
    models,
)

__all__ = [
    "ClassInfo",
    "Error",
    "Info",
    "Learner",
    "LockedError",
    "Prediction",
    "Ranked",
    "UnknownClassError",
    "__version__",
    "models",
]

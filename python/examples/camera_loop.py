"""Classify camera frames with edgecl, the way picamera2 and OpenCV programs hand them over: a loop of
H x W x 3 uint8 RGB numpy arrays.

    # learn a class from 10 frames of what the camera sees now, then classify live
    python camera_loop.py --state objects.edgecl --learn mug --frames 10
    python camera_loop.py --state objects.edgecl

    # anywhere (no camera): a synthetic camera whose scene cycles through three colours; learns each
    # scene from its first frames, classifies the rest and prints the accuracy
    python camera_loop.py --source synthetic --demo --state /tmp/demo.edgecl \
        --model models/tiny/tiny.onnx --runtime tract --min-accuracy 0.9

Sources (--source, default auto = the first that works of picamera2, opencv, synthetic):
  picamera2      Raspberry Pi camera (libcamera), frames requested as RGB
  opencv[:N]     cv2.VideoCapture(N) (default 0; a Jetson CSI camera needs a GStreamer pipeline string,
                 e.g. opencv:"nvarguscamerasrc ! ... ! appsink"); BGR frames converted to RGB
  folder:DIR     the image files of DIR in name order (edgecl decodes them: paths are images too)
  synthetic      numpy-drawn frames, for trying the loop anywhere
"""

import argparse
import os
import sys
import time

import numpy as np

import edgecl


def picamera2_frames(size=(640, 480)):
    from picamera2 import Picamera2

    cam = Picamera2()
    # picamera2's "BGR888" is R, G, B in memory order: the H x W x 3 RGB array edgecl takes.
    cam.configure(cam.create_preview_configuration(main={"format": "BGR888", "size": size}))
    cam.start()
    try:
        while True:
            yield cam.capture_array()
    finally:
        cam.stop()


def opencv_frames(device):
    import cv2

    cap = cv2.VideoCapture(int(device) if device.isdigit() else device)
    if not cap.isOpened():
        raise RuntimeError(f"OpenCV cannot open camera {device!r}")
    try:
        while True:
            ok, bgr = cap.read()
            if not ok:
                return
            # OpenCV gives BGR; cvtColor makes the RGB copy (bgr[..., ::-1], a view, works too).
            yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    finally:
        cap.release()


def folder_frames(folder):
    names = sorted(n for n in os.listdir(folder) if n.lower().endswith((".jpg", ".jpeg", ".png", ".bmp", ".ppm")))
    if not names:
        raise RuntimeError(f"no image files in {folder}")
    for n in names:
        yield os.path.join(folder, n)


SCENES = {"red": (210, 40, 40), "green": (40, 190, 60), "blue": (40, 60, 210)}


def synthetic_frames(scene_frames=20, height=240, width=320, seed=0):
    """A camera looking at one scene after another (`scene_frames` frames each): a flat colour, sensor
    noise and a bright object moving across it. Yields (scene name, frame)."""
    rng = np.random.default_rng(seed)
    i = 0
    while True:
        name = list(SCENES)[(i // scene_frames) % len(SCENES)]
        frame = np.array(SCENES[name], np.float32) + rng.normal(0, 15, (height, width, 3))
        x = (i * 7) % (width - 60)
        frame[80:140, x : x + 60] += 30
        yield name, np.clip(frame, 0, 255).astype(np.uint8)
        i += 1


def open_source(spec):
    """Frames as (None, image) pairs, or (scene, image) for the synthetic camera."""
    if spec in ("auto", "picamera2"):
        try:
            import picamera2  # noqa: F401

            print("source: picamera2", file=sys.stderr)
            return ((None, f) for f in picamera2_frames())
        except ImportError:
            if spec == "picamera2":
                raise
    if spec == "auto" or spec.startswith("opencv"):
        device = spec.partition(":")[2] or "0"
        try:
            gen = opencv_frames(device)
            first = next(gen)
            print(f"source: OpenCV camera {device}", file=sys.stderr)

            def chained():
                yield None, first
                for f in gen:
                    yield None, f

            return chained()
        except (ImportError, RuntimeError, StopIteration) as e:
            if spec != "auto":
                raise SystemExit(f"opencv: {e}")
    if spec.startswith("folder:"):
        print(f"source: folder {spec[7:]}", file=sys.stderr)
        return ((None, p) for p in folder_frames(spec[7:]))
    if spec in ("auto", "synthetic"):
        print("source: synthetic camera (no picamera2 or OpenCV camera here)", file=sys.stderr)
        return synthetic_frames()
    raise SystemExit(f"unknown source {spec!r}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--state", default="camera.edgecl", help="state file (created at the first learn)")
    ap.add_argument("--model", help="ONNX backbone (default: the state's, else the default model)")
    ap.add_argument("--runtime", default="auto", choices=["auto", "ort", "tract"])
    ap.add_argument("--source", default="auto")
    ap.add_argument("--learn", metavar="NAME", help="learn --frames frames as class NAME, then stop")
    ap.add_argument("--frames", type=int, default=0, help="stop after this many frames (0: never)")
    ap.add_argument("--demo", action="store_true", help="synthetic source: learn each scene, then classify")
    ap.add_argument("--min-accuracy", type=float, metavar="A",
                    help="--demo: exit with status 1 if fewer than this fraction of frames are right")
    a = ap.parse_args()

    learner = edgecl.Learner(a.state, a.model, runtime=a.runtime)
    print(f"{learner!r}", file=sys.stderr)
    frames = open_source(a.source)

    if a.learn:
        n = a.frames or 10
        batch = [f for _, (_, f) in zip(range(n), frames)]
        print(f"learned {len(batch)} frames of {a.learn!r}: {learner.learn(a.learn, batch)} captures in all")
        return

    if a.demo:
        if a.source != "synthetic":
            raise SystemExit("--demo needs --source synthetic (it knows each synthetic frame's scene)")
        # The first 5 frames of each scene are the captures; the camera then goes round again.
        for _ in SCENES:
            shots = [next(frames) for _ in range(20)]
            name = shots[0][0]
            print(f"learn {name!r}: {learner.learn(name, [f for _, f in shots[:5]])} captures")

    right = seen = 0
    start = time.perf_counter()
    for i, (truth, frame) in enumerate(frames):
        if a.frames and i >= a.frames:
            break
        t = time.perf_counter()
        p = learner.classify(frame, top=2)
        ms = (time.perf_counter() - t) * 1000
        best = p.top[0]
        label = p.label if p.label is not None else f"unknown (nearest {best.class_})"
        note = "" if truth is None else f"  [scene: {truth}]"
        print(f"frame {i:4d}: {label:<28} score {best.score:.3f}  {ms:6.1f} ms{note}")
        if truth is not None:
            seen += 1
            right += p.label == truth
    if seen:
        print(f"accuracy {right}/{seen} = {right / seen:.1%}; "
              f"{seen / (time.perf_counter() - start):.1f} frames/s")
    if a.min_accuracy is not None and (not seen or right / seen < a.min_accuracy):
        raise SystemExit(f"accuracy below --min-accuracy {a.min_accuracy} ({right}/{seen})")


if __name__ == "__main__":
    main()

# The two commands of README.md:
#   make demo   - set up, build, and run the main job (edgecl demo)
#   make test   - set up, build, and run every test (Rust and Python)
# Both install what they need on a fresh Debian/Ubuntu machine (apt packages need root or sudo).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
# ONNX Runtime for the main job: the PyPI wheel's library, in a venv outside the clone (PEP 668).
ORT_VERSION := 1.32.0
ORT_VENV ?= $(HOME)/.cache/edgecl/venv
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
CARGO ?= cargo
# Each stage of `make test` prints its time.
TIMED := bash .ci/timed

.PHONY: demo test ort-venv rust data help cross-setup cross-aarch64 cross-armv7 firmware camera-deps browser-deps deb deb-test
help:
	@echo "make demo   # learn Fashion-MNIST from 10 captures per class, classify its test set, report"
	@echo "make test   # every test: cargo test (Rust), pytest (models/trainer), cross and firmware tests"
	@echo "make cross-aarch64 | cross-armv7 | firmware   # one of the emulated tests (cross/README.md)"

# apt packages: a C toolchain for linking, python3-venv for the virtual environments, Rust if absent
# (Debian's rustc-web 1.96 where no rustup toolchain is installed), a font for `edgecl eval`'s plots.
rust:
	@missing=""; \
	command -v cc >/dev/null || missing="$$missing build-essential"; \
	python3 -c 'import ensurepip, venv' 2>/dev/null || missing="$$missing python3-venv python3-pip"; \
	command -v $(CARGO) >/dev/null || missing="$$missing rustc-web cargo-web"; \
	[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || missing="$$missing fonts-dejavu-core"; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq $$missing; \
	fi

ort-venv: rust
	@if [ ! -f "$(ORT_VENV)/.edgecl-ort-$(ORT_VERSION)" ]; then \
	  echo "creating $(ORT_VENV) with onnxruntime==$(ORT_VERSION)"; \
	  python3 -m venv "$(ORT_VENV)"; \
	  "$(ORT_VENV)/bin/python" -m pip install -q --disable-pip-version-check onnxruntime==$(ORT_VERSION); \
	  touch "$(ORT_VENV)/.edgecl-ort-$(ORT_VERSION)"; \
	fi

# Fashion-MNIST for the demo: Debian's dataset-fashion-mnist (skipped when EDGECL_DATA or
# ../shared/data already has it).
data:
	@if [ ! -d /usr/share/datasets/fashion-mnist ] && [ ! -d "$${EDGECL_DATA:-../shared/data}/fashion-mnist" ]; then \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq dataset-fashion-mnist; \
	fi

# GStreamer for the camera feature and its tests (videotestsrc pipelines). The default build needs none of it.
# The RTSP test serves a camera with GStreamer's RTSP server from the system python3 (tests/rtsp_server.py).
GST_PACKAGES := pkg-config libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev gstreamer1.0-plugins-base \
  gstreamer1.0-plugins-good gstreamer1.0-tools python3-gi gir1.2-gst-rtsp-server-1.0
camera-deps: rust
	@if ! pkg-config --exists gstreamer-app-1.0 2>/dev/null || ! gst-inspect-1.0 videotestsrc >/dev/null 2>&1 \
	  || ! /usr/bin/python3 -c 'import gi; gi.require_version("GstRtspServer", "1.0")' 2>/dev/null; then \
	  echo "installing: $(GST_PACKAGES)"; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq --no-install-recommends $(GST_PACKAGES); \
	fi

# The browser test of `edgecl serve`'s page (tests/browser.py): Debian's Chromium and its WebDriver, and
# Selenium in the ONNX Runtime venv (it finds the system chromedriver; nothing is downloaded at run time).
SELENIUM_VERSION := 4.51.0
browser-deps: ort-venv
	@if ! command -v chromedriver >/dev/null || ! { command -v chromium >/dev/null || command -v chromium-browser >/dev/null; }; then \
	  echo "installing: chromium chromium-driver"; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq --no-install-recommends chromium chromium-driver; \
	fi
	@if [ ! -f "$(ORT_VENV)/.edgecl-selenium-$(SELENIUM_VERSION)" ]; then \
	  "$(ORT_VENV)/bin/python" -m pip install -q --disable-pip-version-check selenium==$(SELENIUM_VERSION); \
	  touch "$(ORT_VENV)/.edgecl-selenium-$(SELENIUM_VERSION)"; \
	fi

ORT_LIB = $$(ls "$(ORT_VENV)"/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so.* | head -n1)

demo: ort-venv data
	ORT_DYLIB_PATH=$(ORT_LIB) $(CARGO) run --release -- demo $(ARGS)

# The Jetson GPU path (cuda, tensorrt features) can only be compiled here: `make test` builds it, reusing
# the dev build's dependencies.
HOST_FEATURES := camera,serve
# The Python bindings (python/build.sh) build in their own target dir. Cargo's unit graph (2026-12-03)
# says 202 of their 261 units are identical to units of the native test build, but not tract's: the
# features of syn (pyo3 adds visit-mut on the host), memchr, serde_core, serde_json, smallvec and bit-vec
# differ, and every crate above those is another build. Unifying those features would let them share it.
# The native tests run with the camera and serve features (GStreamer sources, `edgecl serve`), and the
# cuda,tensorrt build keeps them,
# so both reuse one set of native dependencies (GStreamer's crates change the features of shared ones).
# The cross builds below are the default build without GStreamer.
test: ort-venv camera-deps browser-deps
	$(TIMED) "native tests" env ORT_DYLIB_PATH=$(ORT_LIB) $(CARGO) test --all-targets --features $(HOST_FEATURES)
	$(TIMED) "browser test" "$(ORT_VENV)/bin/python" tests/browser.py --edgecl $(NATIVE_EDGECL) \
	  --screenshot $${CARGO_TARGET_DIR:-$(CURDIR)/target}/browser/page.png
	$(TIMED) "native cuda,tensorrt build" $(CARGO) build --features $(HOST_FEATURES),cuda,tensorrt --bins
	VENV=$$($(TIMED) "trainer venv" bash models/venv.sh | tail -n1); \
	$(TIMED) "trainer tests" "$$VENV/bin/python" -m pytest models/trainer/tests models/tests -q
	$(TIMED) "python bindings" env CARGO_TARGET_DIR=$${PY_TARGET_DIR:-$(HOME)/.cache/edgecl/target-py} \
	  EDGECL_CLI=$(NATIVE_EDGECL) EDGECL_REQUIRE_CLI=1 bash python/build.sh
	@$(MAKE) --no-print-directory firmware cross-aarch64 cross-armv7 deb-test

# Cross builds and emulation (cross/README.md): apt packages, then each test. Cross builds go to their
# own target dirs outside the clone; the native CLI they compare against is the one `make test` built
# (the scripts build one if it is not there).
NATIVE_EDGECL = $${CARGO_TARGET_DIR:-$(CURDIR)/target}/debug/edgecl
cross-setup:
	$(TIMED) "cross-setup" bash cross/setup-debian.sh

# The no_std core on a Cortex-M4F under QEMU (firmware-tests/).
firmware: cross-setup ort-venv camera-deps
	$(TIMED) "firmware" env HOST_FEATURES=$(HOST_FEATURES) bash firmware-tests/run.sh

# aarch64 (Jetson, Pi 64-bit): library tests, CLI and ONNX Runtime under qemu-aarch64 vs native.
cross-aarch64: cross-setup ort-venv
	$(TIMED) "cross-aarch64" env ORT_VENV=$(ORT_VENV) NATIVE_EDGECL=$(NATIVE_EDGECL) bash cross/test-aarch64.sh

# armv7 (Pi 32-bit): the CLI on tract under qemu-arm vs native.
cross-armv7: cross-setup
	$(TIMED) "cross-armv7" env NATIVE_EDGECL=$(NATIVE_EDGECL) bash cross/test-armv7.sh

# Debian packages for amd64, arm64 and armhf (packaging/deb.sh), from the builds the tests made: the
# native test build and the two cross builds (each target built once, in the dev profile, whose
# dependencies are optimised; the binary is stripped). A target not built yet is built first.
DEB_DIR = $${CARGO_TARGET_DIR:-$(CURDIR)/target}/deb
AARCH64_EDGECL = $${AARCH64_TARGET_DIR:-$(HOME)/.cache/edgecl/target-cross}/aarch64-unknown-linux-gnu/debug/edgecl
ARMV7_EDGECL = $${ARMV7_TARGET_DIR:-$(HOME)/.cache/edgecl/target-armv7}/armv7-unknown-linux-gnueabihf/debug/edgecl
deb: cross-setup camera-deps
	@[ -x "$(NATIVE_EDGECL)" ] || $(CARGO) test --no-run --features $(HOST_FEATURES) --test cli
	@[ -x "$(AARCH64_EDGECL)" ] || $(MAKE) --no-print-directory cross-aarch64
	@[ -x "$(ARMV7_EDGECL)" ] || $(MAKE) --no-print-directory cross-armv7
	$(TIMED) "deb" bash -c 'for a in "amd64 $(NATIVE_EDGECL)" "arm64 $(AARCH64_EDGECL)" "armhf $(ARMV7_EDGECL)"; do \
	  set -- $$a; bash packaging/deb.sh $$1 $$2 $(NATIVE_EDGECL) $(DEB_DIR); done'

# The packages' test: amd64 unpacked into a scratch root runs demo and classify with no --model; arm64 and
# armhf binaries run under QEMU (packaging/test-deb.sh).
deb-test: deb
	$(TIMED) "deb test" bash packaging/test-deb.sh $(DEB_DIR)

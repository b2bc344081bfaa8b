"""The web page of `edgecl serve` in a real browser (headless Chromium over WebDriver, Selenium).

Starts `edgecl serve` with the tiny model and a camera on stdin (raw RGB frames this script draws:
red horizontal stripes or blue vertical stripes), opens the page at a phone's size, creates two
classes, holds each class's capture button while the camera shows it, and waits for the page's live
label to follow the camera. The screenshot is this test's artefact.

    python tests/browser.py --edgecl target/debug/edgecl [--screenshot page.png]

Exits non-zero (with the reason) on any failure. Needs `chromium` and `chromium-driver` (Debian) and
the `selenium` package; `make test` installs them.
"""

import argparse
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

REPO = Path(__file__).resolve().parent.parent
W, H = 64, 48


def frame(kind: int, rng: random.Random) -> bytes:
    """One raw RGB frame: kind 0 = reddish horizontal stripes, 1 = bluish vertical stripes."""
    out = bytearray(W * H * 3)
    for y in range(H):
        for x in range(W):
            on = (y // 4) % 2 == 0 if kind == 0 else (x // 4) % 2 == 0
            hi = (200 if on else 40) + rng.randrange(0, 24)
            i = 3 * (y * W + x)
            out[i : i + 3] = bytes((hi, 30, 30) if kind == 0 else (30, 30, hi))
    return bytes(out)


class Camera(threading.Thread):
    """Writes frames of the class in `shown` to the server's stdin at about 20 a second."""

    def __init__(self, pipe):
        super().__init__(daemon=True)
        rng = random.Random(7)
        self.frames = [[frame(k, rng) for _ in range(6)] for k in (0, 1)]
        self.pipe = pipe
        self.shown = 0
        self.stop = False

    def run(self):
        i = 0
        while not self.stop:
            try:
                self.pipe.write(self.frames[self.shown][i % 6])
                self.pipe.flush()
            except (BrokenPipeError, ValueError):
                return
            i += 1
            time.sleep(0.05)


def start_server(edgecl: str, state: Path):
    proc = subprocess.Popen(
        [edgecl, "serve", "--state", str(state), "--model", str(REPO / "models/tiny/tiny.onnx"),
         "--runtime", "tract", "--threads", "1", "--listen", "127.0.0.1:0",
         "--source", f"stdin:rgb:{W}x{H}"],
        stdin=subprocess.PIPE, stderr=subprocess.PIPE, text=False)
    deadline = time.time() + 60
    while time.time() < deadline:
        line = proc.stderr.readline().decode(errors="replace")
        if not line:
            raise SystemExit(f"edgecl serve ended before listening (exit {proc.poll()})")
        if line.startswith("edgecl serve: listening on "):
            url = line.split("listening on ", 1)[1].strip()
            # Keep draining stderr so the server never blocks on it.
            threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()
            return proc, url
    raise SystemExit("edgecl serve did not say where it listens within 60 s")


def browser() -> webdriver.Chrome:
    opts = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=412,915"):
        opts.add_argument(arg)
    chromium = next((p for p in ("/usr/bin/chromium", "/usr/bin/chromium-browser") if os.path.exists(p)), None)
    if chromium is None:
        raise SystemExit("chromium is not installed (Debian: apt install chromium chromium-driver)")
    opts.binary_location = chromium
    # The system chromedriver: Selenium must not try to download one (there is no network).
    driver_path = "/usr/bin/chromedriver"
    if not os.path.exists(driver_path):
        raise SystemExit("chromedriver is not installed (Debian: apt install chromium-driver)")
    return webdriver.Chrome(service=Service(executable_path=driver_path), options=opts)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--edgecl", required=True)
    ap.add_argument("--screenshot", default=None, help="where to keep the page's screenshot")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="edgecl-browser-"))
    proc, url = start_server(args.edgecl, tmp / "s.edgecl")
    cam = Camera(proc.stdin)
    cam.start()
    driver = browser()
    wait = WebDriverWait(driver, 30, poll_frequency=0.2)
    try:
        driver.get(url)
        wait.until(lambda d: d.find_element(By.ID, "view").is_displayed())
        for kind, name in ((0, "red"), (1, "blue")):
            cam.shown = kind
            time.sleep(0.5)
            driver.find_element(By.ID, "new-class").send_keys(name)
            driver.find_element(By.ID, "add-class").click()
            row = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, f'.row[data-class="{name}"]'))
            button = row.find_element(By.CSS_SELECTOR, "button.capture")
            ActionChains(driver).click_and_hold(button).pause(2.0).release().perform()
            wait.until(lambda d: int(row.find_element(By.CLASS_NAME, "count").text.split()[0]) >= 3)
            print(f"browser: {name}: {row.find_element(By.CLASS_NAME, 'count').text}")
        # The live label follows the camera: blue now, red when the camera shows red again.
        wait.until(lambda d: d.find_element(By.ID, "label").text == "blue")
        cam.shown = 0
        wait.until(lambda d: d.find_element(By.ID, "label").text == "red")
        status = driver.find_element(By.ID, "status").text
        assert "2 classes" in status, status
        error = driver.find_element(By.ID, "error").text
        assert not error, f"the page shows an error: {error}"
        print(f"browser: the label followed the camera (blue, then red); status: {status}")
        if args.screenshot:
            Path(args.screenshot).parent.mkdir(parents=True, exist_ok=True)
            driver.save_screenshot(args.screenshot)
            print(f"browser: screenshot {args.screenshot}")
        # What the page did went through the API into the state file.
        info = subprocess.run([args.edgecl, "info", "--state", str(tmp / "s.edgecl"), "--no-model", "--json"],
                              capture_output=True, check=True, text=True).stdout
        assert '"red"' in info and '"blue"' in info, info
        return 0
    except Exception:
        if args.screenshot:
            driver.save_screenshot(args.screenshot)
            print(f"browser: screenshot of the failure: {args.screenshot}", file=sys.stderr)
        raise
    finally:
        cam.stop = True
        driver.quit()
        proc.kill()
        proc.wait()


if __name__ == "__main__":
    sys.exit(main())

"""A localhost RTSP camera for the tests: GStreamer's RTSP server (Debian python3-gi and
gir1.2-gst-rtsp-server-1.0) serving a videotestsrc pattern as RTP/JPEG.

    /usr/bin/python3 tests/rtsp_server.py PATTERN     # prints rtsp://127.0.0.1:PORT/cam, serves until killed

The frames are I420 before the JPEG encoder: RTP/JPEG (RFC 2435) carries 4:2:0 or 4:2:2 JPEGs only, and
a 4:4:4 one leaves the media unprepared (the server answers 503).
"""

import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

Gst.init(None)
pattern = sys.argv[1] if len(sys.argv) > 1 else "ball"
server = GstRtspServer.RTSPServer()
server.set_address("127.0.0.1")
server.set_service("0")  # an ephemeral port
factory = GstRtspServer.RTSPMediaFactory()
factory.set_launch(
    f"( videotestsrc is-live=true pattern={pattern} ! video/x-raw,format=I420,width=160,height=120,"
    "framerate=15/1 ! jpegenc ! rtpjpegpay name=pay0 pt=26 )"
)
factory.set_shared(True)
server.get_mount_points().add_factory("/cam", factory)
if server.attach(None) == 0:
    sys.exit("rtsp_server: cannot listen on 127.0.0.1")
print(f"rtsp://127.0.0.1:{server.get_bound_port()}/cam", flush=True)
GLib.MainLoop().run()

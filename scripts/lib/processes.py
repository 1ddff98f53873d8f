"""What the long-running scripts (soak, failover) share: stopping a child process they
started, and JSON calls to the simulator's and the exporter's HTTP APIs."""
import http.server
import json
import subprocess
import threading
import urllib.error
import urllib.request


def stop_process(proc, sig, wait):
    """Sends `sig` to `proc` (if it is still running), kills it after `wait` seconds."""
    if proc and proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(wait)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def call(method, url, body=None, timeout=5):
    """(status, body bytes) of one request with an optional JSON body; (None, why) when no
    answer came."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"content-type": "application/json"} if data else {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except (urllib.error.URLError, OSError) as e:
        return None, str(e).encode()


def serve_receiver(port, answer):
    """A webhook receiver on 127.0.0.1:`port`, in a thread: each POST's body (bytes) goes to
    `answer`, whose return value is the HTTP status sent back (with an empty body)."""
    class Receiver(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            status = answer(self.rfile.read(int(self.headers.get("content-length", 0))))
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *_):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server

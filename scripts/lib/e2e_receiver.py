#!/usr/bin/env python3
"""e2e: a webhook receiver on 127.0.0.1:PORT answering 200; what Alertmanager posts to
/alertmanager is appended to FILE, one JSON document a line.

Usage: e2e_receiver.py PORT FILE
"""
import http.server, json, sys

class Receiver(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        if self.path == "/alertmanager":
            with open(sys.argv[2], "a") as f:
                f.write(json.dumps(json.loads(body)) + "\n")
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass

http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Receiver).serve_forever()

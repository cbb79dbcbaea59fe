#!/usr/bin/env python3
"""A loopback stand-in for the wandb backend, speaking the subset djct uses (see
../shared/formats/wandb.md): POST /graphql (UpsertBucket) and POST /files/E/P/R/file_stream, which
stores file[offset+i] = line like the SDK's test spy. Standard library only; listens on 127.0.0.1.

  python3 tests/wandb_server.py --port-file F --state S --log L [--lifetime 120]
                                [--tls-cert CERT.pem --tls-key KEY.pem] [--history-mode offset|step]

--history-mode says what happens to a history line sent at an offset: "offset" (the default, as
the SDK's test spy) stores it there, replacing a line the server holds; "step" appends it only when
its _step is above the _step of the last line held and ignores it otherwise, as a server that keeps
history ordered by _step would: a client must keep one row per step under either.

With --tls-cert/--tls-key it speaks HTTPS (the TLS handshake runs in each request's thread, so a
client that rejects the certificate, or never finishes the handshake, blocks nothing).

The expected key comes from $DJCT_TEST_KEY (Basic auth "api:<key>", else 401). Every request is
appended to L (JSONL: kind, path, auth ok/bad, status, fault, body) and the whole state is rewritten
to S after each request. Fault injection, set with POST /_control {"fs": [...], "gql": [...],
"fs_always": status|null}: each request of that kind pops one item: "ok", a status (500, 404, ...),
"429:SECS" (429 with Retry-After), "drop" (close without answering, nothing stored), "applydrop"
(store, then close without answering: a lost acknowledgement), "slow:SECS", "hold" (wait, counted
in the state's "held", until {"release": true} is posted to /_control; then answer as "ok"): a test
can show that nothing waits for an upload without timing anything. POST /_quit stops it; it also
stops by itself after --lifetime seconds. Never prints the key.
"""
import argparse
import base64
import json
import os
import socket
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

lock = threading.Lock()
state = {"runs": {}, "requests": 0, "held": 0}
faults = {"fs": [], "gql": []}
fs_always = [None]
released = threading.Event()
args = None


def save():
    tmp = args.state + ".tmp"
    with open(tmp, "w") as f:
        json.dump(state, f)
    os.replace(tmp, args.state)


def log(rec):
    with open(args.log, "a") as f:
        f.write(json.dumps(rec) + "\n")


def run_key(entity, project, name):
    return "%s/%s/%s" % (entity, project, name)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):  # quiet
        pass

    def reply(self, status, obj, headers=None):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def drop(self):
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        raw = self.rfile.read(n) if n else b""
        path = self.path
        if path == "/_quit":
            self.reply(200, {})
            threading.Thread(target=self.server.shutdown, daemon=True).start()
            return
        if path == "/_control":
            c = json.loads(raw or b"{}")
            with lock:
                for k in ("fs", "gql"):
                    if k in c:
                        faults[k] = list(c[k])
                if "fs_always" in c:
                    fs_always[0] = c["fs_always"]
            if c.get("release"):
                released.set()
            self.reply(200, {})
            return
        kind = "gql" if path == "/graphql" else "fs" if path.endswith("/file_stream") else "other"
        want = "Basic " + base64.b64encode(("api:" + os.environ.get("DJCT_TEST_KEY", "")).encode()).decode()
        got = self.headers.get("Authorization")
        auth = "missing" if got is None else ("ok" if got == want else "bad")
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = {"_unparsed": raw.decode(errors="replace")}
        with lock:
            state["requests"] += 1
            fault = "ok"
            if kind in faults and faults[kind]:
                fault = faults[kind].pop(0)
            elif kind == "fs" and fs_always[0] is not None:
                fault = fs_always[0]
        rec = {"kind": kind, "path": path, "auth": auth, "fault": fault, "body": body,
               "ua": self.headers.get("User-Agent"), "t": time.time()}
        fault = str(fault)
        if fault == "hold":
            with lock:
                state["held"] += 1
                save()
            released.wait(args.lifetime)
            with lock:
                state["held"] -= 1
                save()
            fault = "ok"
        if fault.startswith("slow:"):
            time.sleep(float(fault[5:]))
            fault = "ok"
        if auth != "ok":
            rec["status"] = 401
            log(rec)
            self.reply(401, {"error": "unauthorized"})
            return
        if fault == "drop":
            rec["status"] = 0
            log(rec)
            self.drop()
            return
        if fault.startswith("429"):
            rec["status"] = 429
            log(rec)
            self.reply(429, {"error": "rate limited"}, {"Retry-After": fault.split(":")[1] if ":" in fault else "1"})
            return
        if fault not in ("ok", "applydrop"):
            rec["status"] = int(fault)
            log(rec)
            self.reply(int(fault), {"error": "injected %s" % fault})
            return
        if kind == "gql":
            status, out = self.upsert(body)
        elif kind == "fs":
            status, out = self.file_stream(path, body)
        else:
            status, out = 404, {"error": "no such endpoint"}
        rec["status"] = 0 if fault == "applydrop" else status
        log(rec)
        if fault == "applydrop":
            self.drop()
            return
        self.reply(status, out)

    def upsert(self, body):
        if not body or body.get("operationName") != "UpsertBucket":
            return 400, {"errors": [{"message": "only UpsertBucket is supported"}]}
        v = body.get("variables") or {}
        if not v.get("name") or not v.get("project"):
            return 200, {"errors": [{"message": "name and project are required"}]}
        if "config" in v and v["config"] is not None:
            json.loads(v["config"])  # must be a JSON string
        entity = v.get("entity") or "test-entity"
        with lock:
            k = run_key(entity, v["project"], v["name"])
            inserted = k not in state["runs"]
            r = state["runs"].setdefault(k, {"files": {}, "complete": False, "exitcode": None,
                                             "preempting": False, "upserts": [], "fs_requests": 0})
            r["upserts"].append(v)
            hlc = len(r["files"].get("wandb-history.jsonl", []))
            save()
        return 200, {"data": {"upsertBucket": {"bucket": {
            "id": "storage-" + v["name"], "name": v["name"], "displayName": v.get("displayName"),
            "description": None, "config": v.get("config"), "sweepName": None,
            "project": {"id": "p-1", "name": v["project"], "entity": {"id": "e-1", "name": entity}},
            "historyLineCount": hlc}, "inserted": inserted}}}

    def file_stream(self, path, body):
        parts = path.split("/")  # '', files, E, P, R, file_stream
        if len(parts) != 6:
            return 404, {"error": "bad path"}
        with lock:
            k = run_key(parts[2], parts[3], parts[4])
            r = state["runs"].get(k)
            if r is None:
                return 404, {"error": "run %s not found (UpsertBucket first)" % k}
            r["fs_requests"] += 1
            for name, f in (body.get("files") or {}).items():
                lines = r["files"].setdefault(name, [])
                off = f["offset"]
                if name == "wandb-history.jsonl" and args.history_mode == "step":
                    for line in f["content"]:
                        last = json.loads(lines[-1])["_step"] if lines else -1
                        if json.loads(line)["_step"] > last:
                            lines.append(line)
                    continue
                for i, line in enumerate(f["content"]):
                    while len(lines) <= off + i:
                        lines.append(None)  # a gap: the test must never see one
                    lines[off + i] = line
            if body.get("preempting"):
                r["preempting"] = True
            if body.get("complete"):
                r["complete"] = True
                r["exitcode"] = body.get("exitcode")
            save()
        return 200, {}


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        e = sys.exc_info()[1]
        if isinstance(e, ssl.SSLError):  # the client refused the certificate (or spoke plain HTTP)
            log({"kind": "tls", "status": 0, "error": str(e), "t": time.time()})
            return
        if isinstance(e, ConnectionError):
            return
        super().handle_error(request, client_address)


def main():
    global args
    p = argparse.ArgumentParser()
    p.add_argument("--port-file", required=True)
    p.add_argument("--state", required=True)
    p.add_argument("--log", required=True)
    p.add_argument("--lifetime", type=float, default=120)
    p.add_argument("--tls-cert")
    p.add_argument("--tls-key")
    p.add_argument("--history-mode", choices=("offset", "step"), default="offset")
    args = p.parse_args()
    srv = Server(("127.0.0.1", 0), Handler)
    if args.tls_cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.tls_cert, args.tls_key)
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True, do_handshake_on_connect=False)
    with lock:
        save()
    open(args.log, "a").close()
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(srv.server_address[1]))
    os.replace(tmp, args.port_file)
    threading.Timer(args.lifetime, srv.shutdown).start()
    srv.serve_forever()
    os._exit(0)


if __name__ == "__main__":
    main()

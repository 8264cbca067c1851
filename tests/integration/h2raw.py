"""A raw HTTP/2 client (python3-h2) for tests that need exact control of
frames and headers: bad content types, envelopes, message counts, floods."""
import socket
import ssl
import struct
import time

import h2.config
import h2.connection
import h2.events


class Response:
    def __init__(self):
        self.headers = {}
        self.trailers = {}
        self.data = b""
        self.reset = None
        self.ended = False

    @property
    def status(self):
        return int(self.headers.get(":status", 0))

    def messages(self):
        """Splits the body into (flags, payload) envelopes."""
        out, d = [], self.data
        while len(d) >= 5:
            flags, n = d[0], struct.unpack(">I", d[1:5])[0]
            out.append((flags, d[5:5 + n]))
            d = d[5 + n:]
        return out


def envelope(payload, flags=0):
    return struct.pack(">BI", flags, len(payload)) + payload


class Conn:
    def __init__(self, host, port, tls_ctx=None, server_name="localhost"):
        s = socket.create_connection((host, port))
        if tls_ctx:
            s = tls_ctx.wrap_socket(s, server_hostname=server_name)
        self.sock = s
        self.h2 = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
        self.h2.initiate_connection()
        self.flush()
        self.responses = {}
        self.goaway = None          # (error code, debug data) of the server's GOAWAY

    def flush(self):
        data = self.h2.data_to_send()
        if data:
            self.sock.sendall(data)

    def request(self, path, headers=(), body=b"", end=True, method="POST", split=None):
        sid = self.h2.get_next_available_stream_id()
        hdrs = [(":method", method), (":scheme", "http"), (":authority", "localhost"), (":path", path)]
        hdrs += list(headers)
        self.h2.send_headers(sid, hdrs, end_stream=(end and not body))
        self.responses[sid] = Response()
        if body:
            chunks = [body] if not split else [body[i:i + split] for i in range(0, len(body), split)]
            for i, ch in enumerate(chunks):
                self._send_data(sid, ch, end_stream=end and i == len(chunks) - 1)
        self.flush()
        return sid

    def _send_data(self, sid, data, end_stream):
        while data:
            window = min(self.h2.local_flow_control_window(sid), self.h2.max_outbound_frame_size)
            while window <= 0:
                self.pump(0.2)
                window = min(self.h2.local_flow_control_window(sid), self.h2.max_outbound_frame_size)
            part, data = data[:window], data[window:]
            self.h2.send_data(sid, part, end_stream=end_stream and not data)
            self.flush()
        if end_stream and data == b"" and False:
            pass

    def send(self, sid, data, end=False):
        if data:
            self._send_data(sid, data, end)
        elif end:
            self.h2.end_stream(sid)
        self.flush()

    def pump(self, timeout=5.0):
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65536)
        except (socket.timeout, ssl.SSLWantReadError):
            return False
        if not data:
            raise ConnectionError("closed")
        for ev in self.h2.receive_data(data):
            r = self.responses.get(getattr(ev, "stream_id", None))
            if isinstance(ev, h2.events.ResponseReceived):
                r.headers = dict(ev.headers)
            elif isinstance(ev, h2.events.TrailersReceived):
                r.trailers = dict(ev.headers)
            elif isinstance(ev, h2.events.DataReceived):
                r.data += ev.data
                self.h2.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, h2.events.StreamEnded):
                r.ended = True
            elif isinstance(ev, h2.events.ConnectionTerminated):
                self.goaway = (ev.error_code, ev.additional_data or b"")
            elif isinstance(ev, h2.events.StreamReset):
                if r:
                    r.reset = ev.error_code
                    r.ended = True
        self.flush()
        return True

    def wait(self, sid, timeout=10.0):
        r = self.responses[sid]
        deadline = time.monotonic() + timeout
        while not r.ended and time.monotonic() < deadline:
            self.pump(max(0.01, deadline - time.monotonic()))
        return r

    def send_raw_frame(self, ftype, stream_id, payload, flags=0):
        """Writes one frame as is, behind python-h2's back (it would refuse
        frames its own state machine does not allow)."""
        self.sock.sendall(struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) +
                          struct.pack(">I", stream_id) + payload)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def h2c(agent):
    return Conn("127.0.0.1", agent.h2c_port)

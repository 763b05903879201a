"""A container runtime's CRI socket for the bench, as far as ringtail asks it.

Serves `runtime.v1.RuntimeService/ListPodSandbox` with grpcio (the reference gRPC
implementation) on a unix socket, answering one running pod sandbox with the labels and
annotations a kubelet hands a typical Deployment's pod (its own `io.kubernetes.*` keys
included, as containerd returns them). The bench's `ringtail-labels` collector points
`kubernetes.cri_socket` here so that the records of the kubelet-layout case carry pod labels.

Usage: python fake_cri.py SOCKET POD_UID

The response is encoded by hand (the few fields of CRI's api.proto it needs): ListPodSandboxResponse
{items = 1: PodSandbox {id = 1, metadata = 2: {name = 1, uid = 2, namespace = 3, attempt = 4},
state = 3, created_at = 4, labels = 5, annotations = 6}}.
"""

import signal
import sys
import time
from concurrent import futures

import grpc

LABELS = {
    "app": "checkout",
    "team": "payments",
    "tier": "backend",
    "version": "2.14.1",
    "pod-template-hash": "7d9f8b6c5d",
    "app.kubernetes.io/part-of": "shop",
    "io.kubernetes.pod.name": "bench-0",
    "io.kubernetes.pod.namespace": "bench",
}
ANNOTATIONS = {
    "prometheus.io/scrape": "true",
    "prometheus.io/port": "9100",
    "kubectl.kubernetes.io/restartedAt": "2026-12-01T10:00:00Z",
    "kubernetes.io/config.source": "api",
}


def varint(n):
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def field(number, payload):
    """A length-delimited field (strings, messages, map entries)."""
    if isinstance(payload, str):
        payload = payload.encode()
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def entries(number, mapping):
    return b"".join(field(number, field(1, k) + field(2, v)) for k, v in mapping.items())


def response(uid):
    metadata = field(1, "bench-0") + field(2, uid) + field(3, "bench")
    sandbox = (
        field(1, "f" * 64)
        + field(2, metadata)
        + varint(3 << 3) + varint(0)  # state: SANDBOX_READY
        + varint(4 << 3) + varint(time.time_ns())
        + entries(5, LABELS)
        + entries(6, ANNOTATIONS)
    )
    return field(1, sandbox)


def main():
    socket, uid = sys.argv[1], sys.argv[2]
    answer = response(uid)
    handler = grpc.method_handlers_generic_handler(
        "runtime.v1.RuntimeService",
        {"ListPodSandbox": grpc.unary_unary_rpc_method_handler(lambda request, context: answer)},
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(f"unix:{socket}")
    server.start()
    signal.signal(signal.SIGTERM, lambda *_: server.stop(0))
    server.wait_for_termination()


if __name__ == "__main__":
    main()

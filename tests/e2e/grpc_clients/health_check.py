"""grpc.health.v1.Health/Check and KServe ServerReady from Debian's python3-grpcio, without
generated stubs (grpc_health is not packaged): the tiny messages are serialised by hand.

  HealthCheckRequest  { string service = 1; }
  HealthCheckResponse { ServingStatus status = 1; }  UNKNOWN 0, SERVING 1, NOT_SERVING 2
  inference.ServerReadyResponse { bool ready = 1; }

Usage as a script: health_check.py HOST:PORT [SERVICE ...] prints one line per service.
"""

import sys

import grpc

SERVING = 1
NOT_SERVING = 2
STATUS_NAMES = {0: "UNKNOWN", SERVING: "SERVING", NOT_SERVING: "NOT_SERVING", 3: "SERVICE_UNKNOWN"}

# The names `moeserve serve` registers with the health service.
SERVICE_NAMES = ["", "moeserve.v1.MoeServe", "inference.GRPCInferenceService"]


def _varint(n):
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _read_varint(data, pos):
    value, shift = 0, 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def encode_health_request(service):
    raw = service.encode("utf-8")
    return b"\x0a" + _varint(len(raw)) + raw if raw else b""


def decode_enum_field1(data):
    """Field 1 (varint) of a message, 0 when absent (proto3 default)."""
    pos, value = 0, 0
    while pos < len(data):
        key, pos = _read_varint(data, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            v, pos = _read_varint(data, pos)
            if field == 1:
                value = v
        elif wire == 2:
            length, pos = _read_varint(data, pos)
            pos += length
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        else:
            raise ValueError("unexpected wire type %d" % wire)
    return value


def check(channel, service, timeout=5.0):
    """(grpc.StatusCode, serving status or None)."""
    call = channel.unary_unary("/grpc.health.v1.Health/Check")
    try:
        response = call(encode_health_request(service), timeout=timeout)
    except grpc.RpcError as err:
        return err.code(), None
    return grpc.StatusCode.OK, decode_enum_field1(response)


def server_ready(channel, timeout=5.0):
    """KServe ServerReady: (grpc.StatusCode, ready or None)."""
    call = channel.unary_unary("/inference.GRPCInferenceService/ServerReady")
    try:
        response = call(b"", timeout=timeout)
    except grpc.RpcError as err:
        return err.code(), None
    return grpc.StatusCode.OK, bool(decode_enum_field1(response))


def reflection_services(channel, timeout=5.0):
    """Service names listed by server reflection (grpc.reflection.v1alpha, what gRPC 1.51 serves):
    ServerReflectionRequest { string list_services = 7; } -> ServerReflectionResponse
    { ListServiceResponse list_services_response = 6 { repeated ServiceResponse service = 1
    { string name = 1; } } }."""
    call = channel.stream_stream("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo")
    responses = list(call(iter([b"\x3a\x01*"]), timeout=timeout))
    names = []
    for data in responses:
        for field, payload in _fields(data):
            if field != 6:
                continue
            for f2, service in _fields(payload):
                if f2 == 1:
                    names += [p.decode("utf-8") for f3, p in _fields(service) if f3 == 1]
    return names


def _fields(data):
    """(field number, bytes) of the length-delimited fields of a message."""
    pos, out = 0, []
    while pos < len(data):
        key, pos = _read_varint(data, pos)
        field, wire = key >> 3, key & 7
        if wire == 2:
            length, pos = _read_varint(data, pos)
            out.append((field, data[pos:pos + length]))
            pos += length
        elif wire == 0:
            _, pos = _read_varint(data, pos)
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        else:
            raise ValueError("unexpected wire type %d" % wire)
    return out


def selftest():
    assert encode_health_request("") == b""
    assert encode_health_request("ab") == b"\x0a\x02ab"
    assert encode_health_request("x" * 200)[:3] == b"\x0a\xc8\x01"
    assert decode_enum_field1(b"\x08\x01") == 1
    assert decode_enum_field1(b"") == 0
    assert decode_enum_field1(b"\x12\x01z\x08\x02") == 2


def main(argv):
    selftest()
    channel = grpc.insecure_channel(argv[1])
    for service in argv[2:] or SERVICE_NAMES:
        code, status = check(channel, service)
        print("%-32r %s %s" % (service, code.name, STATUS_NAMES.get(status, status)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

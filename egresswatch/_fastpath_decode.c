#include "_fastpath.h"

/* Packet's attribute names, interned once at import. */
enum {
    F_SRC_MAC, F_DST_MAC, F_VLAN, F_L3_PROTO, F_IP_VERSION, F_SRC, F_DST, F_PROTO, F_IP_BYTES,
    F_SPORT, F_DPORT, F_TCP_FLAGS, F_PAYLOAD_OFF, F_PAYLOAD_END, PACKET_FIELDS
};
static const char *const packet_field_names[PACKET_FIELDS] = {
    "src_mac", "dst_mac", "vlan", "l3_proto", "ip_version", "src", "dst", "proto", "ip_bytes",
    "sport", "dport", "tcp_flags", "payload_off", "payload_end",
};
static PyObject *packet_fields[PACKET_FIELDS];

static int set_long(PyObject *pkt, int field, long value) {
    PyObject *number = PyLong_FromLong(value);
    if (number == NULL)
        return -1;
    int failed = PyObject_SetAttr(pkt, packet_fields[field], number);
    Py_DECREF(number);
    return failed;
}

static int set_bytes(PyObject *pkt, int field, const unsigned char *at, Py_ssize_t size) {
    PyObject *bytes = PyBytes_FromStringAndSize((const char *)at, size);
    if (bytes == NULL)
        return -1;
    int failed = PyObject_SetAttr(pkt, packet_fields[field], bytes);
    Py_DECREF(bytes);
    return failed;
}

const char ew_decode_ethernet_doc[] =
"decode_ethernet(data, offset, end, pkt, udp_tunnel_ports) -> bool\n\n"
"Fill `pkt`, a new decode.packet.Packet, from the Ethernet frame data[offset:end] when the frame\n"
"has the common shape: at most one 802.1Q tag, then IPv4 that is not a fragment or IPv6 without\n"
"extension headers, then TCP, or UDP to a port not in `udp_tunnel_ports`, every header well\n"
"formed. `pkt` then holds exactly what the registry's decoders (decode/link.py, decode/ip.py) put\n"
"there. False, with `pkt` untouched, for any other frame: the registry decodes those.";

PyObject *ew_decode_ethernet(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 5) {
        PyErr_SetString(PyExc_TypeError, "decode_ethernet() takes 5 arguments");
        return NULL;
    }
    Py_ssize_t offset = PyLong_AsSsize_t(args[1]), end = PyLong_AsSsize_t(args[2]);
    if (PyErr_Occurred())
        return NULL;
    PyObject *pkt = args[3], *tunnel_ports = args[4];
    Py_buffer data;
    if (PyObject_GetBuffer(args[0], &data, PyBUF_SIMPLE) < 0)
        return NULL;
    PyObject *result = Py_False;
    if (offset < 0 || end > data.len || offset > end)
        goto done;
    /* Offsets below are from the start of the frame, `length` its captured size. */
    const unsigned char *p = (const unsigned char *)data.buf + offset;
    const Py_ssize_t length = end - offset;
    if (length < 14)
        goto done;
    unsigned etype = be16(p + 12);
    Py_ssize_t l3 = 14;
    long vlan = -1;
    if (etype == 0x8100) {
        if (length < 18)
            goto done;
        vlan = (p[14] & 0x0F) << 8 | p[15];
        etype = be16(p + 16);
        l3 = 18;
    }
    const unsigned char *ip = p + l3;
    int version, proto;
    long ip_bytes;
    Py_ssize_t transport, ip_end, address_size, src_at;
    if (etype == 0x0800) {
        if (length - l3 < 20)
            goto done;
        const Py_ssize_t ihl = (ip[0] & 0x0F) * 4, total = be16(ip + 2);
        if (ip[0] >> 4 != 4 || ihl < 20 || total < ihl || length - l3 < ihl)
            goto done;
        if ((ip[6] & 0x3F) || ip[7]) /* a fragment: fragment offset or more-fragments set */
            goto done;
        version = 4, proto = ip[9], ip_bytes = total;
        address_size = 4, src_at = l3 + 12;
        transport = l3 + ihl;
        ip_end = l3 + total < length ? l3 + total : length;
    } else if (etype == 0x86DD) {
        if (length - l3 < 40 || ip[0] >> 4 != 6)
            goto done;
        const Py_ssize_t payload = be16(ip + 4);
        version = 6, proto = ip[6], ip_bytes = 40 + payload;
        address_size = 16, src_at = l3 + 8;
        transport = l3 + 40;
        ip_end = l3 + 40 + payload < length ? l3 + 40 + payload : length;
    } else
        goto done;
    const unsigned char *t = p + transport;
    Py_ssize_t payload_off;
    int tcp_flags = -1;
    if ((proto != 6 && proto != 17) || ip_end - transport < (proto == 6 ? 14 : 8))
        goto done;
    const unsigned sport = be16(t), dport = be16(t + 2);
    if (proto == 6) {
        const Py_ssize_t data_offset = (t[12] >> 4) * 4;
        if (data_offset < 20)
            goto done;
        tcp_flags = t[13];
        payload_off = transport + data_offset < ip_end ? transport + data_offset : ip_end;
    } else {
        PyObject *port = PyLong_FromLong(dport);
        if (port == NULL) {
            result = NULL;
            goto done;
        }
        const int tunnel = PySequence_Contains(tunnel_ports, port);
        Py_DECREF(port);
        if (tunnel < 0) {
            result = NULL;
            goto done;
        }
        if (tunnel)
            goto done;
        payload_off = transport + 8;
    }
    if (set_bytes(pkt, F_DST_MAC, p, 6) < 0 || set_bytes(pkt, F_SRC_MAC, p + 6, 6) < 0
        || (vlan >= 0 && set_long(pkt, F_VLAN, vlan) < 0) || set_long(pkt, F_L3_PROTO, etype) < 0
        || set_long(pkt, F_IP_VERSION, version) < 0 || set_bytes(pkt, F_SRC, p + src_at, address_size) < 0
        || set_bytes(pkt, F_DST, p + src_at + address_size, address_size) < 0
        || set_long(pkt, F_PROTO, proto) < 0 || set_long(pkt, F_IP_BYTES, ip_bytes) < 0
        || set_long(pkt, F_SPORT, sport) < 0 || set_long(pkt, F_DPORT, dport) < 0
        || (tcp_flags >= 0 && set_long(pkt, F_TCP_FLAGS, tcp_flags) < 0)
        || set_long(pkt, F_PAYLOAD_OFF, (long)(offset + payload_off)) < 0
        || set_long(pkt, F_PAYLOAD_END, (long)(offset + ip_end)) < 0) {
        result = NULL;
        goto done;
    }
    result = Py_True;
done:
    PyBuffer_Release(&data);
    Py_XINCREF(result);
    return result;
}

int ew_decode_ethernet_init(void) {
    for (int field = 0; field < PACKET_FIELDS; field++)
        if (packet_fields[field] == NULL
            && (packet_fields[field] = PyUnicode_InternFromString(packet_field_names[field])) == NULL)
            return -1;
    return 0;
}

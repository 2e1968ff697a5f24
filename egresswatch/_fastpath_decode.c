#include "_fastpath.h"

#include <structmember.h>

/* ------------------------------------------------------------------ PacketBase */

/* The fields of decode.packet.Packet, as objects: attribute access from Python stays as quick as a
 * slot's, and a new packet is one allocation with every default set here instead of in __init__. */
typedef struct {
    PyObject_HEAD
    PyObject *src_mac, *dst_mac, *vlan, *l3_proto, *ip_version, *src, *dst, *proto, *ip_bytes,
        *sport, *dport, *tcp_flags, *frag_id, *frag_offset, *frag_more, *payload_off, *payload_end,
        *tunnel_depth;
} PacketBase;

#define PACKET_MEMBER(name, doc) {#name, T_OBJECT_EX, offsetof(PacketBase, name), 0, doc}
static PyMemberDef packet_members[] = {
    PACKET_MEMBER(src_mac, "source MAC (6 bytes) or None"),
    PACKET_MEMBER(dst_mac, "destination MAC (6 bytes) or None"),
    PACKET_MEMBER(vlan, "the innermost 802.1Q VLAN id, or None"),
    PACKET_MEMBER(l3_proto, "ethertype of the network layer (0x0800, 0x86dd, 0x0806 ...); 0 when unknown"),
    PACKET_MEMBER(ip_version, "4, 6, or 0 for a frame without IP"),
    PACKET_MEMBER(src, "source address, packed"),
    PACKET_MEMBER(dst, "destination address, packed"),
    PACKET_MEMBER(proto, "IP protocol, -1 without IP"),
    PACKET_MEMBER(ip_bytes, "IP-layer bytes, from the IP header"),
    PACKET_MEMBER(sport, "source port, or None"),
    PACKET_MEMBER(dport, "destination port, or None"),
    PACKET_MEMBER(tcp_flags, "TCP flags byte, 0 for other protocols"),
    PACKET_MEMBER(frag_id, "IP identification when the packet is a fragment, else None"),
    PACKET_MEMBER(frag_offset, "fragment offset in bytes"),
    PACKET_MEMBER(frag_more, "more fragments follow"),
    PACKET_MEMBER(payload_off, "payload start in the capture buffer"),
    PACKET_MEMBER(payload_end, "payload end in the capture buffer"),
    PACKET_MEMBER(tunnel_depth, "tunnels decapsulated to reach this packet"),
    {NULL},
};

static PyObject *empty_bytes, *zero, *minus_one; /* defaults, made once */

static PyObject *packet_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    if (PyTuple_GET_SIZE(args) || (kwargs && PyDict_GET_SIZE(kwargs))) {
        PyErr_SetString(PyExc_TypeError, "Packet() takes no arguments");
        return NULL;
    }
    PacketBase *pkt = (PacketBase *)type->tp_alloc(type, 0);
    if (pkt == NULL)
        return NULL;
    pkt->src_mac = Py_NewRef(Py_None), pkt->dst_mac = Py_NewRef(Py_None), pkt->vlan = Py_NewRef(Py_None);
    pkt->l3_proto = Py_NewRef(zero), pkt->ip_version = Py_NewRef(zero);
    pkt->src = Py_NewRef(empty_bytes), pkt->dst = Py_NewRef(empty_bytes);
    pkt->proto = Py_NewRef(minus_one), pkt->ip_bytes = Py_NewRef(zero);
    pkt->sport = Py_NewRef(Py_None), pkt->dport = Py_NewRef(Py_None), pkt->tcp_flags = Py_NewRef(zero);
    pkt->frag_id = Py_NewRef(Py_None), pkt->frag_offset = Py_NewRef(zero), pkt->frag_more = Py_NewRef(Py_False);
    pkt->payload_off = Py_NewRef(zero), pkt->payload_end = Py_NewRef(zero), pkt->tunnel_depth = Py_NewRef(zero);
    return (PyObject *)pkt;
}

static void packet_dealloc(PacketBase *pkt) {
    Py_XDECREF(pkt->src_mac), Py_XDECREF(pkt->dst_mac), Py_XDECREF(pkt->vlan), Py_XDECREF(pkt->l3_proto);
    Py_XDECREF(pkt->ip_version), Py_XDECREF(pkt->src), Py_XDECREF(pkt->dst), Py_XDECREF(pkt->proto);
    Py_XDECREF(pkt->ip_bytes), Py_XDECREF(pkt->sport), Py_XDECREF(pkt->dport), Py_XDECREF(pkt->tcp_flags);
    Py_XDECREF(pkt->frag_id), Py_XDECREF(pkt->frag_offset), Py_XDECREF(pkt->frag_more);
    Py_XDECREF(pkt->payload_off), Py_XDECREF(pkt->payload_end), Py_XDECREF(pkt->tunnel_depth);
    Py_TYPE(pkt)->tp_free((PyObject *)pkt); /* a subclass's type reference is subtype_dealloc's */
}

/* No GC: a packet holds only ints, bytes, None and booleans, so it is in no reference cycle. */
PyTypeObject ew_PacketBaseType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "egresswatch._fastpath.PacketBase",
    .tp_doc = "The header fields of one packet, with their defaults (subclassed by decode.packet.Packet).",
    .tp_basicsize = sizeof(PacketBase),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_new = packet_new,
    .tp_dealloc = (destructor)packet_dealloc,
    .tp_members = packet_members,
};

/* Replace a field's object with a new reference; -1 (the old one kept) when `value` is NULL. */
static int set_field(PyObject **field, PyObject *value) {
    if (value == NULL)
        return -1;
    Py_SETREF(*field, value);
    return 0;
}

/* ------------------------------------------------------------------ decode_ethernet */

const char ew_decode_ethernet_doc[] =
"decode_ethernet(data, offset, end, pkt, udp_tunnel_ports) -> bool\n\n"
"Fill `pkt`, a new decode.packet.Packet (a PacketBase), from the Ethernet frame data[offset:end] when the frame\n"
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
    PyObject *tunnel_ports = args[4];
    if (!PyObject_TypeCheck(args[3], &ew_PacketBaseType)) {
        PyErr_SetString(PyExc_TypeError, "decode_ethernet(): pkt must be a Packet");
        return NULL;
    }
    PacketBase *pkt = (PacketBase *)args[3];
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
    const unsigned char *src = p + src_at;
    if (set_field(&pkt->dst_mac, PyBytes_FromStringAndSize((const char *)p, 6)) < 0
        || set_field(&pkt->src_mac, PyBytes_FromStringAndSize((const char *)p + 6, 6)) < 0
        || (vlan >= 0 && set_field(&pkt->vlan, PyLong_FromLong(vlan)) < 0)
        || set_field(&pkt->l3_proto, PyLong_FromLong(etype)) < 0
        || set_field(&pkt->ip_version, PyLong_FromLong(version)) < 0
        || set_field(&pkt->src, PyBytes_FromStringAndSize((const char *)src, address_size)) < 0
        || set_field(&pkt->dst, PyBytes_FromStringAndSize((const char *)src + address_size, address_size)) < 0
        || set_field(&pkt->proto, PyLong_FromLong(proto)) < 0
        || set_field(&pkt->ip_bytes, PyLong_FromLong(ip_bytes)) < 0
        || set_field(&pkt->sport, PyLong_FromLong(sport)) < 0
        || set_field(&pkt->dport, PyLong_FromLong(dport)) < 0
        || (tcp_flags >= 0 && set_field(&pkt->tcp_flags, PyLong_FromLong(tcp_flags)) < 0)
        || set_field(&pkt->payload_off, PyLong_FromSsize_t(offset + payload_off)) < 0
        || set_field(&pkt->payload_end, PyLong_FromSsize_t(offset + ip_end)) < 0) {
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
    if (empty_bytes == NULL && (empty_bytes = PyBytes_FromStringAndSize(NULL, 0)) == NULL)
        return -1;
    if ((zero == NULL && (zero = PyLong_FromLong(0)) == NULL)
        || (minus_one == NULL && (minus_one = PyLong_FromLong(-1)) == NULL))
        return -1;
    return PyType_Ready(&ew_PacketBaseType);
}

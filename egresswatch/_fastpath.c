/* The module egresswatch._fastpath, and the flow meter's per-packet scan: egresswatch/flows.py is
 * its reference. (_fastpath.h lists the other files.)
 *
 * `scan` walks a batch's records from `start` and counts every packet of an established flow
 * that needs no inspection (the "fast tables" of flows.py) straight into its FlowSide. It returns
 * to Python at the first packet it cannot finish: one whose second is later than the meter's
 * clock (timers are due), one that is not on the fast path (new flow, inspection, anything the
 * full decoder must see), or one whose FIN or RST leaves its flow closed (counted, and the flow's
 * TCP state updated here, as flows.tcp_update does; the close timer is Python's). flows.py has the
 * same scan in Python (`scan_batch`) for builds without a compiler; tests/test_fastpath.py replays
 * every test capture through both and compares.
 *
 * Layout and tests are those of flows.py's IPV4_LAYOUT, TAGGED_IPV4_LAYOUT, IPV6_LAYOUT and
 * TAGGED_IPV6_LAYOUT, byte for byte: a frame takes the fast path here exactly when it does there.
 */
#include "_fastpath.h"

#include <structmember.h>

enum { SCAN_END = 0, SCAN_TICK = 1, SCAN_SLOW = 2, SCAN_CLOSED = 3 };

#define IPV4_MIN 48
#define TAGGED_IPV4_MIN 52
#define IPV6_MIN 68
#define TAGGED_IPV6_MIN 72
#define TCP_FIN 0x01
#define TCP_RST 0x04
#define TCP_STATE_FLAGS 0x07 /* FIN | SYN | RST */
/* FlowState.state bits, as flows.py's FIN_A, FIN_B and CLOSED */
#define FIN_A 1
#define FIN_B 2
#define CLOSED 4

/* ------------------------------------------------------------------ Side */

typedef struct {
    PyObject_HEAD
    long long packets;
    long long bytes;
    double sec;
    long usec;
    PyObject *flow;
    char is_a;
} Side;

static int side_traverse(Side *self, visitproc visit, void *arg) {
    Py_VISIT(self->flow);
    return 0;
}

static int side_clear(Side *self) {
    Py_CLEAR(self->flow);
    return 0;
}

static void side_dealloc(Side *self) {
    PyObject_GC_UnTrack(self);
    side_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMemberDef side_members[] = {
    {"packets", T_LONGLONG, offsetof(Side, packets), 0, "packets counted on this side"},
    {"bytes", T_LONGLONG, offsetof(Side, bytes), 0, "IP-layer bytes counted on this side"},
    {"sec", T_DOUBLE, offsetof(Side, sec), 0, "latest packet time, whole seconds (or a float time)"},
    {"usec", T_LONG, offsetof(Side, usec), 0, "latest packet time, microseconds part"},
    {"flow", T_OBJECT, offsetof(Side, flow), 0, "the flow this side belongs to"},
    {"is_a", T_BOOL, offsetof(Side, is_a), 0, "whether this is the side that sent first"},
    {NULL},
};

static PyObject *side_last(Side *self, void *Py_UNUSED(closure)) {
    return PyFloat_FromDouble(self->sec + self->usec * 1e-6);
}

static PyGetSetDef side_getset[] = {
    {"last", (getter)side_last, NULL, "time of the latest packet: sec + usec * 1e-6", NULL},
    {NULL},
};

static PyTypeObject SideType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "egresswatch._fastpath.Side",
    .tp_doc = "The counters of one direction of a flow (subclassed by flows.FlowSide).",
    .tp_basicsize = sizeof(Side),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_new = PyType_GenericNew,
    .tp_dealloc = (destructor)side_dealloc,
    .tp_traverse = (traverseproc)side_traverse,
    .tp_clear = (inquiry)side_clear,
    .tp_members = side_members,
    .tp_getset = side_getset,
};

/* ------------------------------------------------------------------ FlowState */

typedef struct {
    PyObject_HEAD
    int tcp_flags;
    int state;
} FlowState;

static PyMemberDef flowstate_members[] = {
    {"tcp_flags", T_INT, offsetof(FlowState, tcp_flags), 0, "OR of the flow's SYN/FIN/RST packets' TCP flags"},
    {"state", T_INT, offsetof(FlowState, state), 0, "FIN_A | FIN_B | CLOSED bits (flows.py)"},
    {NULL},
};

static PyTypeObject FlowStateType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "egresswatch._fastpath.FlowState",
    .tp_doc = "The TCP state of a flow, which the scan updates in place (subclassed by flows.Flow).",
    .tp_basicsize = sizeof(FlowState),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_new = PyType_GenericNew,
    .tp_members = flowstate_members,
};

/* flows.tcp_update: fold a SYN/FIN/RST packet's flags into its flow; whether the flow is now closed. */
static int tcp_update(FlowState *flow, int from_a, int flags) {
    flow->tcp_flags |= flags;
    if (!(flags & (TCP_FIN | TCP_RST)))
        return 0;
    if (flags & TCP_RST)
        flow->state |= CLOSED;
    else {
        flow->state |= from_a ? FIN_A : FIN_B;
        if ((flow->state & (FIN_A | FIN_B)) == (FIN_A | FIN_B))
            flow->state |= CLOSED;
    }
    return (flow->state & CLOSED) != 0;
}

/* ------------------------------------------------------------------ scan */

static PyObject *scan_result(int reason, Py_ssize_t index, long long ip_bytes, PyObject *side, int flags) {
    return Py_BuildValue("(inLOi)", reason, index, ip_bytes, side ? side : Py_None, flags);
}

/* The side for `key_len` bytes of flow key at `key` in the (tcp, udp) pair of FastTables
 * `tables`: borrowed, NULL with no error when absent, NULL with an error set on failure. */
static PyObject *lookup(PyObject *tables, int proto, const unsigned char *key, Py_ssize_t key_len) {
    PyObject *table;
    if (proto == 6)
        table = PyTuple_GET_ITEM(tables, 0);
    else if (proto == 17)
        table = PyTuple_GET_ITEM(tables, 1);
    else
        return NULL;
    if (!Py_IS_TYPE(table, &ew_FastTableType)) {
        PyErr_SetString(PyExc_TypeError, "scan(): fast tables must be FastTables");
        return NULL;
    }
    return ew_fast_table_lookup(table, key, key_len);
}

PyDoc_STRVAR(scan_doc,
"scan(data, meta, start, clock, untagged, vlans) -> (reason, index, ip_bytes, side, flags)\n\n"
"Count fast-path packets of an Ethernet batch from record `start` on. `untagged` is the (tcp, udp)\n"
"pair of FastTables, `vlans` maps a VLAN id to such a pair. A SYN, FIN or RST updates its flow's\n"
"TCP state (`side.flow`, a FlowState). Stops at record `index` with reason 1 (its second is past\n"
"`clock`), 2 (it needs the slow path) or 3 (counted, and its FIN or RST, in `flags`, left `side`'s\n"
"flow closed: resume at index + 1); 0 when the batch is done. `ip_bytes` is what this call counted.");

static PyObject *scan(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 6) {
        PyErr_SetString(PyExc_TypeError, "scan() takes 6 arguments");
        return NULL;
    }
    Py_ssize_t start = PyLong_AsSsize_t(args[2]);
    long long clock = PyLong_AsLongLong(args[3]);
    PyObject *untagged = args[4], *vlans = args[5];
    if (PyErr_Occurred())
        return NULL;
    if (start < 0) {
        PyErr_SetString(PyExc_ValueError, "scan(): negative start");
        return NULL;
    }
    if (!PyTuple_Check(untagged) || PyTuple_GET_SIZE(untagged) != 2 || !PyDict_Check(vlans)) {
        PyErr_SetString(PyExc_TypeError, "scan(): untagged must be a (tcp, udp) tuple, vlans a dict");
        return NULL;
    }
    Py_buffer data, meta;
    if (PyObject_GetBuffer(args[0], &data, PyBUF_SIMPLE) < 0)
        return NULL;
    if (PyObject_GetBuffer(args[1], &meta, PyBUF_SIMPLE) < 0) {
        PyBuffer_Release(&data);
        return NULL;
    }
    const unsigned char *buf = data.buf;
    const Py_ssize_t records = meta.len / 16;
    long long ip_bytes = 0;
    PyObject *result = NULL;
    Py_ssize_t i;
    for (i = start; i < records; i++) {
        uint32_t record[4]; /* sec, usec, offset, caplen: native endian, as META_STRUCT */
        memcpy(record, (const char *)meta.buf + i * 16, sizeof record);
        const uint32_t sec = record[0], usec = record[1], off = record[2], caplen = record[3];
        if ((long long)sec > clock) {
            result = scan_result(SCAN_TICK, i, ip_bytes, NULL, 0);
            goto done;
        }
        if (caplen < IPV4_MIN || (Py_ssize_t)off + (Py_ssize_t)caplen > data.len)
            goto slow;
        const unsigned char *p = buf + off;
        PyObject *tables = NULL;
        unsigned length = 0;
        int proto = 0, flags = 0;
        const unsigned char *key = NULL;
        Py_ssize_t key_len = 0;
        const unsigned etype = be16(p + 12);
        if (etype == 0x0800) {
            if (p[14] == 0x45 && !(be16(p + 20) & 0x3FFF)) {
                tables = untagged;
                length = be16(p + 16);
                proto = p[23];
                key = p + 26, key_len = 12;
                flags = p[47];
            }
        } else if (etype == 0x8100) {
            if (caplen >= TAGGED_IPV4_MIN) {
                const unsigned inner = be16(p + 16);
                if (inner == 0x0800 && p[18] == 0x45 && !(be16(p + 24) & 0x3FFF)) {
                    PyObject *vid = PyLong_FromLong(be16(p + 14) & 0x0FFF);
                    if (vid == NULL)
                        goto done;
                    tables = PyDict_GetItemWithError(vlans, vid);
                    Py_DECREF(vid);
                    length = be16(p + 20);
                    proto = p[27];
                    key = p + 30, key_len = 12;
                    flags = p[51];
                } else if (inner == 0x86DD && caplen >= TAGGED_IPV6_MIN && p[18] >> 4 == 6) {
                    PyObject *vid = PyLong_FromLong(be16(p + 14) & 0x0FFF);
                    if (vid == NULL)
                        goto done;
                    tables = PyDict_GetItemWithError(vlans, vid);
                    Py_DECREF(vid);
                    length = be16(p + 22) + 40;
                    proto = p[24];
                    key = p + 26, key_len = 36;
                    flags = p[71];
                }
                if (tables == NULL && PyErr_Occurred())
                    goto done;
            }
        } else if (etype == 0x86DD && caplen >= IPV6_MIN && p[14] >> 4 == 6) {
            tables = untagged;
            length = be16(p + 18) + 40;
            proto = p[20];
            key = p + 22, key_len = 36;
            flags = p[67];
        }
        if (tables == NULL || !PyTuple_Check(tables) || PyTuple_GET_SIZE(tables) != 2)
            goto slow;
        PyObject *found = lookup(tables, proto, key, key_len);
        if (found == NULL) {
            if (PyErr_Occurred())
                goto done;
            goto slow;
        }
        if (!PyObject_TypeCheck(found, &SideType))
            goto slow;
        Side *side = (Side *)found;
        side->packets += 1;
        side->bytes += length;
        side->sec = (double)sec;
        side->usec = (long)usec;
        ip_bytes += length;
        if (proto == 6 && (flags & TCP_STATE_FLAGS)) {
            if (side->flow == NULL || !PyObject_TypeCheck(side->flow, &FlowStateType)) {
                PyErr_SetString(PyExc_TypeError, "scan(): a TCP side's flow must be a FlowState");
                goto done;
            }
            if (tcp_update((FlowState *)side->flow, side->is_a, flags)) {
                result = scan_result(SCAN_CLOSED, i, ip_bytes, found, flags);
                goto done;
            }
        }
        continue;
    slow:
        result = scan_result(SCAN_SLOW, i, ip_bytes, NULL, 0);
        goto done;
    }
    result = scan_result(SCAN_END, records, ip_bytes, NULL, 0);
done:
    PyBuffer_Release(&meta);
    PyBuffer_Release(&data);
    return result;
}

static PyMethodDef methods[] = {
    {"scan", (PyCFunction)(void (*)(void))scan, METH_FASTCALL, scan_doc},
    {"decode_ethernet", (PyCFunction)(void (*)(void))ew_decode_ethernet, METH_FASTCALL, ew_decode_ethernet_doc},
    {"pcap_index", ew_pcap_index, METH_VARARGS, ew_pcap_index_doc},
    {NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "egresswatch._fastpath",
    .m_doc = "The per-packet hot paths in C: the flow meter's scan (egresswatch/flows.py is its\n"
             "reference), the common Ethernet frame's decode (the registry's) and the pcap record index.",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC PyInit__fastpath(void) {
    if (PyType_Ready(&SideType) < 0 || PyType_Ready(&FlowStateType) < 0 || ew_fast_table_init() < 0
        || ew_decode_ethernet_init() < 0 || PyType_Ready(&ew_BpfProgramType) < 0)
        return NULL;
    PyObject *module = PyModule_Create(&module_def);
    if (module == NULL)
        return NULL;
    if (PyModule_AddIntConstant(module, "SCAN_END", SCAN_END) < 0
        || PyModule_AddIntConstant(module, "SCAN_TICK", SCAN_TICK) < 0
        || PyModule_AddIntConstant(module, "SCAN_SLOW", SCAN_SLOW) < 0
        || PyModule_AddIntConstant(module, "SCAN_CLOSED", SCAN_CLOSED) < 0
        || PyModule_AddIntConstant(module, "MAXIMUM_SNAPLEN", MAXIMUM_SNAPLEN) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    if (PyModule_AddObjectRef(module, "Side", (PyObject *)&SideType) < 0
        || PyModule_AddObjectRef(module, "FlowState", (PyObject *)&FlowStateType) < 0
        || PyModule_AddObjectRef(module, "FastTable", (PyObject *)&ew_FastTableType) < 0
        || PyModule_AddObjectRef(module, "PacketBase", (PyObject *)&ew_PacketBaseType) < 0
        || PyModule_AddObjectRef(module, "BpfProgram", (PyObject *)&ew_BpfProgramType) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}

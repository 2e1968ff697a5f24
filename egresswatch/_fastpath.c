/* The flow meter's per-packet scan in C: egresswatch/flows.py is the reference.
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
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <stdint.h>
#include <string.h>

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

/* ------------------------------------------------------------------ FastTable */

/* A hash table from bytes keys to objects: the fast tables of flows.py (a dict without this
 * extension). The scan looks a frame's flow key up where it lies in the capture buffer, with no
 * bytes object made and freed per packet. Keys hash with the interpreter's own keyed hash
 * (PyHash_GetFuncDef, SipHash by default), so a sender cannot choose keys that collide; probing
 * is the dict's (perturbed), the load at most 2/3. */

typedef struct {
    Py_hash_t hash;
    PyObject *key; /* a bytes object; NULL: never used; DELETED: its entry was taken out */
    PyObject *value;
} Slot;

static char deleted_tag;
#define DELETED ((PyObject *)&deleted_tag)
#define FAST_TABLE_MIN 8

typedef struct {
    PyObject_HEAD
    Slot *slots;
    size_t mask; /* slots - 1, a power of two minus one */
    Py_ssize_t used; /* live entries */
    Py_ssize_t filled; /* live and deleted entries */
} FastTable;

static PyTypeObject FastTableType;
static Py_hash_t (*hash_bytes)(const void *, Py_ssize_t);

static Slot *fast_table_find(FastTable *table, Py_hash_t hash, const unsigned char *key, Py_ssize_t size) {
    size_t i = (size_t)hash & table->mask, perturb = (size_t)hash;
    for (;;) {
        Slot *slot = &table->slots[i];
        if (slot->key == NULL)
            return NULL;
        if (slot->key != DELETED && slot->hash == hash && PyBytes_GET_SIZE(slot->key) == size
            && memcmp(PyBytes_AS_STRING(slot->key), key, size) == 0)
            return slot;
        perturb >>= 5;
        i = (i * 5 + perturb + 1) & table->mask;
    }
}

/* The value for the `size` key bytes at `key`: borrowed, NULL when absent. */
static PyObject *fast_table_lookup(FastTable *table, const unsigned char *key, Py_ssize_t size) {
    if (table->used == 0)
        return NULL;
    Slot *slot = fast_table_find(table, hash_bytes(key, size), key, size);
    return slot ? slot->value : NULL;
}

static int fast_table_resize(FastTable *table, size_t capacity) {
    Slot *old = table->slots;
    const size_t old_capacity = old ? table->mask + 1 : 0;
    Slot *slots = PyMem_Calloc(capacity, sizeof(Slot));
    if (slots == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    table->slots = slots;
    table->mask = capacity - 1;
    table->filled = table->used;
    for (size_t j = 0; j < old_capacity; j++) {
        if (old[j].key == NULL || old[j].key == DELETED)
            continue;
        size_t i = (size_t)old[j].hash & table->mask, perturb = (size_t)old[j].hash;
        while (slots[i].key != NULL) {
            perturb >>= 5;
            i = (i * 5 + perturb + 1) & table->mask;
        }
        slots[i] = old[j];
    }
    PyMem_Free(old);
    return 0;
}

static int check_key(PyObject *key) {
    if (PyBytes_CheckExact(key))
        return 0;
    PyErr_Format(PyExc_TypeError, "FastTable keys are bytes, not %.100s", Py_TYPE(key)->tp_name);
    return -1;
}

static int fast_table_set(FastTable *table, PyObject *key, PyObject *value) {
    if (check_key(key) < 0)
        return -1;
    const Py_hash_t hash = hash_bytes(PyBytes_AS_STRING(key), PyBytes_GET_SIZE(key));
    Slot *found = table->used ? fast_table_find(table, hash, (const unsigned char *)PyBytes_AS_STRING(key),
                                                PyBytes_GET_SIZE(key))
                              : NULL;
    if (found != NULL) {
        Py_INCREF(value);
        Py_SETREF(found->value, value);
        return 0;
    }
    if ((size_t)(table->filled + 1) * 3 > (table->mask + 1) * 2) {
        /* past 2/3: room for twice the live entries (deleted ones are dropped on the way) */
        size_t capacity = FAST_TABLE_MIN;
        while (capacity * 2 < (size_t)(table->used + 1) * 4)
            capacity <<= 1;
        if (fast_table_resize(table, capacity) < 0)
            return -1;
    }
    size_t i = (size_t)hash & table->mask, perturb = (size_t)hash;
    while (table->slots[i].key != NULL && table->slots[i].key != DELETED) {
        perturb >>= 5;
        i = (i * 5 + perturb + 1) & table->mask;
    }
    Slot *slot = &table->slots[i];
    if (slot->key == NULL)
        table->filled++;
    Py_INCREF(key);
    Py_INCREF(value);
    slot->hash = hash, slot->key = key, slot->value = value;
    table->used++;
    return 0;
}

/* Take `key` out; its value (a new reference), or NULL with no error when absent. */
static PyObject *fast_table_take(FastTable *table, PyObject *key) {
    if (check_key(key) < 0 || table->used == 0)
        return NULL;
    Slot *slot = fast_table_find(table, hash_bytes(PyBytes_AS_STRING(key), PyBytes_GET_SIZE(key)),
                                 (const unsigned char *)PyBytes_AS_STRING(key), PyBytes_GET_SIZE(key));
    if (slot == NULL)
        return NULL;
    PyObject *value = slot->value;
    Py_DECREF(slot->key);
    slot->key = DELETED, slot->value = NULL;
    table->used--;
    return value;
}

static int fast_table_init(FastTable *Py_UNUSED(table), PyObject *args, PyObject *kwargs) {
    if (PyTuple_GET_SIZE(args) || (kwargs && PyDict_GET_SIZE(kwargs))) {
        PyErr_SetString(PyExc_TypeError, "FastTable() takes no arguments");
        return -1;
    }
    return 0;
}

static int fast_table_traverse(FastTable *table, visitproc visit, void *arg) {
    for (size_t i = 0; table->slots && i <= table->mask; i++)
        if (table->slots[i].key != NULL && table->slots[i].key != DELETED)
            Py_VISIT(table->slots[i].value);
    return 0;
}

static int fast_table_clear(FastTable *table) {
    Slot *slots = table->slots;
    const size_t capacity = slots ? table->mask + 1 : 0;
    table->slots = NULL, table->mask = 0, table->used = table->filled = 0;
    for (size_t i = 0; i < capacity; i++)
        if (slots[i].key != NULL && slots[i].key != DELETED) {
            Py_DECREF(slots[i].key);
            Py_DECREF(slots[i].value);
        }
    PyMem_Free(slots);
    return 0;
}

static void fast_table_dealloc(FastTable *table) {
    PyObject_GC_UnTrack(table);
    fast_table_clear(table);
    Py_TYPE(table)->tp_free((PyObject *)table);
}

static Py_ssize_t fast_table_length(FastTable *table) { return table->used; }

static PyObject *fast_table_subscript(FastTable *table, PyObject *key) {
    if (check_key(key) < 0)
        return NULL;
    PyObject *value = fast_table_lookup(table, (const unsigned char *)PyBytes_AS_STRING(key), PyBytes_GET_SIZE(key));
    if (value == NULL) {
        PyErr_SetObject(PyExc_KeyError, key);
        return NULL;
    }
    return Py_NewRef(value);
}

static int fast_table_ass_subscript(FastTable *table, PyObject *key, PyObject *value) {
    if (value != NULL)
        return fast_table_set(table, key, value);
    PyObject *taken = fast_table_take(table, key);
    if (taken == NULL) {
        if (!PyErr_Occurred())
            PyErr_SetObject(PyExc_KeyError, key);
        return -1;
    }
    Py_DECREF(taken);
    return 0;
}

static PyObject *fast_table_get(FastTable *table, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs < 1 || nargs > 2) {
        PyErr_SetString(PyExc_TypeError, "get() takes a key and an optional default");
        return NULL;
    }
    if (check_key(args[0]) < 0)
        return NULL;
    PyObject *value = fast_table_lookup(table, (const unsigned char *)PyBytes_AS_STRING(args[0]), PyBytes_GET_SIZE(args[0]));
    return Py_NewRef(value ? value : nargs == 2 ? args[1] : Py_None);
}

static PyObject *fast_table_pop(FastTable *table, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs < 1 || nargs > 2) {
        PyErr_SetString(PyExc_TypeError, "pop() takes a key and an optional default");
        return NULL;
    }
    PyObject *value = fast_table_take(table, args[0]);
    if (value != NULL || PyErr_Occurred())
        return value;
    if (nargs == 2)
        return Py_NewRef(args[1]);
    PyErr_SetObject(PyExc_KeyError, args[0]);
    return NULL;
}

static PyObject *fast_table_values(FastTable *table, PyObject *Py_UNUSED(ignored)) {
    PyObject *values = PyList_New(0);
    for (size_t i = 0; values && table->slots && i <= table->mask; i++)
        if (table->slots[i].key != NULL && table->slots[i].key != DELETED
            && PyList_Append(values, table->slots[i].value) < 0)
            Py_CLEAR(values);
    return values;
}

static PyMethodDef fast_table_methods[] = {
    {"get", (PyCFunction)(void (*)(void))fast_table_get, METH_FASTCALL, "get(key, default=None)"},
    {"pop", (PyCFunction)(void (*)(void))fast_table_pop, METH_FASTCALL, "pop(key[, default])"},
    {"values", (PyCFunction)fast_table_values, METH_NOARGS, "values() -> a list of the values"},
    {NULL},
};

static PyMappingMethods fast_table_mapping = {
    .mp_length = (lenfunc)fast_table_length,
    .mp_subscript = (binaryfunc)fast_table_subscript,
    .mp_ass_subscript = (objobjargproc)fast_table_ass_subscript,
};

static PyTypeObject FastTableType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "egresswatch._fastpath.FastTable",
    .tp_doc = "FastTable(): bytes keys -> objects, the fast tables the scan looks frames up in\n"
              "(get, [key] = value, pop, values, len: a dict's, for these).",
    .tp_basicsize = sizeof(FastTable),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)fast_table_init,
    .tp_dealloc = (destructor)fast_table_dealloc,
    .tp_traverse = (traverseproc)fast_table_traverse,
    .tp_clear = (inquiry)fast_table_clear,
    .tp_methods = fast_table_methods,
    .tp_as_mapping = &fast_table_mapping,
};

/* ------------------------------------------------------------------ scan */

static inline unsigned be16(const unsigned char *p) { return (unsigned)p[0] << 8 | p[1]; }

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
    if (!Py_IS_TYPE(table, &FastTableType)) {
        PyErr_SetString(PyExc_TypeError, "scan(): fast tables must be FastTables");
        return NULL;
    }
    return fast_table_lookup((FastTable *)table, key, key_len);
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

/* ------------------------------------------------------------------ decode_ethernet */

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

PyDoc_STRVAR(decode_ethernet_doc,
"decode_ethernet(data, offset, end, pkt, udp_tunnel_ports) -> bool\n\n"
"Fill `pkt`, a new decode.packet.Packet, from the Ethernet frame data[offset:end] when the frame\n"
"has the common shape: at most one 802.1Q tag, then IPv4 that is not a fragment or IPv6 without\n"
"extension headers, then TCP, or UDP to a port not in `udp_tunnel_ports`, every header well\n"
"formed. `pkt` then holds exactly what the registry's decoders (decode/link.py, decode/ip.py) put\n"
"there. False, with `pkt` untouched, for any other frame: the registry decodes those.");

static PyObject *decode_ethernet(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs) {
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

/* ------------------------------------------------------------------ pcap_index */

#define MAXIMUM_SNAPLEN 262144 /* libpcap's, for every link type we decode */

static inline uint32_t read32(const unsigned char *p, int big_endian) {
    return big_endian ? (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]
                      : (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
}

PyDoc_STRVAR(pcap_index_doc,
"pcap_index(data, offset, max_packets, big_endian, nanosecond, snapshot) -> (meta, next_offset, problem)\n\n"
"Index up to `max_packets` classic-pcap records of `data` (the whole file) from byte `offset`:\n"
"`meta` holds a (sec, usec, offset, caplen) record per packet, offsets into `data`, as a batch.\n"
"Records follow libpcap's reading: a record longer than `snapshot` gives its first `snapshot`\n"
"bytes; `problem` is None, or why reading stops at `next_offset` (a cut record, or a capture\n"
"length no file of this link type can have), in libpcap's words.");

static PyObject *pcap_index(PyObject *Py_UNUSED(module), PyObject *args) {
    Py_buffer data;
    Py_ssize_t offset, max_packets;
    int big_endian, nanosecond;
    unsigned long snapshot;
    if (!PyArg_ParseTuple(args, "y*nnppk", &data, &offset, &max_packets, &big_endian, &nanosecond, &snapshot))
        return NULL;
    if (max_packets < 0 || offset < 0) {
        PyBuffer_Release(&data);
        PyErr_SetString(PyExc_ValueError, "pcap_index(): negative offset or count");
        return NULL;
    }
    PyObject *meta = PyBytes_FromStringAndSize(NULL, max_packets * 16);
    if (meta == NULL) {
        PyBuffer_Release(&data);
        return NULL;
    }
    uint32_t *out = (uint32_t *)PyBytes_AS_STRING(meta);
    const unsigned char *buf = data.buf;
    Py_ssize_t count = 0;
    PyObject *problem = NULL;
    while (count < max_packets) {
        if (offset == data.len)
            break;
        if (data.len - offset < 16) {
            problem = PyUnicode_FromFormat("truncated dump file; tried to read 16 header bytes, only got %zd",
                                           data.len - offset);
            break;
        }
        const unsigned char *h = buf + offset;
        uint32_t sec = read32(h, big_endian), frac = read32(h + 4, big_endian);
        uint32_t caplen = read32(h + 8, big_endian);
        if (caplen > MAXIMUM_SNAPLEN && caplen > snapshot) {
            problem = PyUnicode_FromFormat("invalid packet capture length %u, bigger than snaplen of %lu",
                                           caplen, snapshot);
            break;
        }
        if ((Py_ssize_t)caplen > data.len - offset - 16) {
            problem = PyUnicode_FromFormat("truncated dump file; tried to read %u captured bytes, only got %zd",
                                           caplen, data.len - offset - 16);
            break;
        }
        out[count * 4] = sec;
        out[count * 4 + 1] = nanosecond ? frac / 1000 : frac;
        out[count * 4 + 2] = (uint32_t)(offset + 16);
        out[count * 4 + 3] = caplen > snapshot ? (uint32_t)snapshot : caplen;
        offset += 16 + (Py_ssize_t)caplen;
        count++;
    }
    PyBuffer_Release(&data);
    if (PyErr_Occurred()) {
        Py_DECREF(meta);
        return NULL;
    }
    if (_PyBytes_Resize(&meta, count * 16) < 0) {
        Py_XDECREF(problem);
        return NULL;
    }
    PyObject *result = Py_BuildValue("(NnO)", meta, offset, problem ? problem : Py_None);
    Py_XDECREF(problem);
    return result;
}

static PyMethodDef methods[] = {
    {"scan", (PyCFunction)(void (*)(void))scan, METH_FASTCALL, scan_doc},
    {"decode_ethernet", (PyCFunction)(void (*)(void))decode_ethernet, METH_FASTCALL, decode_ethernet_doc},
    {"pcap_index", pcap_index, METH_VARARGS, pcap_index_doc},
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
    if (PyType_Ready(&SideType) < 0 || PyType_Ready(&FlowStateType) < 0 || PyType_Ready(&FastTableType) < 0)
        return NULL;
    hash_bytes = PyHash_GetFuncDef()->hash;
    for (int field = 0; field < PACKET_FIELDS; field++)
        if (packet_fields[field] == NULL
            && (packet_fields[field] = PyUnicode_InternFromString(packet_field_names[field])) == NULL)
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
        || PyModule_AddObjectRef(module, "FastTable", (PyObject *)&FastTableType) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}

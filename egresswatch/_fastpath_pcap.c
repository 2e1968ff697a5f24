#include "_fastpath.h"

static inline uint32_t read32(const unsigned char *p, int big_endian) {
    return big_endian ? be32(p) : (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
}

const char ew_pcap_index_doc[] =
"pcap_index(data, offset, max_packets, big_endian, nanosecond, snapshot, program=None)\n"
"    -> (meta, next_offset, problem)\n\n"
"Index up to `max_packets` classic-pcap records of `data` (the whole file) from byte `offset`:\n"
"`meta` holds a (sec, usec, offset, caplen) record per packet, offsets into `data`, as a batch.\n"
"Records follow libpcap's reading: a record longer than `snapshot` gives its first `snapshot`\n"
"bytes; `problem` is None, or why reading stops at `next_offset` (a cut record, or a capture\n"
"length no file of this link type can have), in libpcap's words. With a BpfProgram, only the\n"
"records it keeps are indexed, as libpcap's filtered read delivers them. A call reads at most\n"
"16 MiB of records (a filter may keep none of them): the file is done when `next_offset` is its\n"
"length.";

#define READ_PER_CALL (16 << 20) /* the reader hands back pages between calls: this bounds its RSS */

PyObject *ew_pcap_index(PyObject *Py_UNUSED(module), PyObject *args) {
    Py_buffer data;
    Py_ssize_t offset, max_packets;
    int big_endian, nanosecond;
    unsigned long snapshot;
    PyObject *program = Py_None;
    if (!PyArg_ParseTuple(args, "y*nnppk|O", &data, &offset, &max_packets, &big_endian, &nanosecond, &snapshot,
                          &program))
        return NULL;
    if (program != Py_None && !Py_IS_TYPE(program, &ew_BpfProgramType)) {
        PyBuffer_Release(&data);
        PyErr_SetString(PyExc_TypeError, "pcap_index(): program must be a BpfProgram or None");
        return NULL;
    }
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
    const Py_ssize_t first = offset;
    while (count < max_packets && offset - first < READ_PER_CALL) {
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
        const uint32_t kept = caplen > snapshot ? (uint32_t)snapshot : caplen;
        if (program == Py_None || ew_bpf_run(program, h + 16, read32(h + 12, big_endian), kept)) {
            out[count * 4] = sec;
            out[count * 4 + 1] = nanosecond ? frac / 1000 : frac;
            out[count * 4 + 2] = (uint32_t)(offset + 16);
            out[count * 4 + 3] = kept;
            count++;
        }
        offset += 16 + (Py_ssize_t)caplen;
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

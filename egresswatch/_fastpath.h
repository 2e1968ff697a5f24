/* What the C files of the extension egresswatch._fastpath share: one module, one file per concern.
 *
 *   _fastpath.c          the module, Side, FlowState and the flow meter's scan (flows.py is its reference)
 *   _fastpath_table.c    FastTable, the fast tables' hash table
 *   _fastpath_decode.c   PacketBase, and decode_ethernet, the common Ethernet frame's decode (the registry's)
 *   _fastpath_pcap.c     pcap_index, classic pcap records read as libpcap reads them
 *   _fastpath_bpf.c      BpfProgram, a libpcap-compiled filter run over records in place
 */
#ifndef EGRESSWATCH_FASTPATH_H
#define EGRESSWATCH_FASTPATH_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define MAXIMUM_SNAPLEN 262144 /* libpcap's, for every link type we decode */

static inline unsigned be16(const unsigned char *p) { return (unsigned)p[0] << 8 | p[1]; }
static inline uint32_t be32(const unsigned char *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* _fastpath_table.c */
extern PyTypeObject ew_FastTableType;
int ew_fast_table_init(void);
PyObject *ew_fast_table_lookup(PyObject *table, const unsigned char *key, Py_ssize_t size);

/* _fastpath_decode.c */
extern PyTypeObject ew_PacketBaseType;
extern const char ew_decode_ethernet_doc[];
int ew_decode_ethernet_init(void);
PyObject *ew_decode_ethernet(PyObject *module, PyObject *const *args, Py_ssize_t nargs);

/* _fastpath_pcap.c */
extern const char ew_pcap_index_doc[];
PyObject *ew_pcap_index(PyObject *module, PyObject *args);

/* _fastpath_bpf.c */
extern PyTypeObject ew_BpfProgramType;
uint32_t ew_bpf_run(PyObject *program, const unsigned char *packet, uint32_t wirelen, uint32_t buflen);

#endif

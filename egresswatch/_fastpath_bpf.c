#include "_fastpath.h"

/* A classic BPF program, as libpcap compiles a filter expression, run over capture records where
 * they lie: what libpcap's bpf_filter() does for a filtered read of a file, without libpcap
 * copying every packet into a buffer first. The semantics are bpf_filter()'s, bounds checks
 * included (a load past the captured bytes rejects the packet); programs are checked as
 * bpf_validate() checks them. tests/test_bpf_program.py holds it to libpcap's own interpreter. */

enum {
    LD = 0x00, LDX = 0x01, ST = 0x02, STX = 0x03, ALU = 0x04, JMP = 0x05, RET = 0x06, MISC = 0x07,
    W = 0x00, H = 0x08, B = 0x10,
    IMM = 0x00, ABS = 0x20, IND = 0x40, MEM = 0x60, LEN = 0x80, MSH = 0xa0,
    ADD = 0x00, SUB = 0x10, MUL = 0x20, DIV = 0x30, OR = 0x40, AND = 0x50, LSH = 0x60, RSH = 0x70,
    NEG = 0x80, MOD = 0x90, XOR = 0xa0,
    JA = 0x00, JEQ = 0x10, JGT = 0x20, JGE = 0x30, JSET = 0x40,
    K = 0x00, X = 0x08, A = 0x10,
    TAX = 0x00, TXA = 0x80,
};
#define MEMWORDS 16

typedef struct {
    uint16_t code;
    uint8_t jt, jf;
    uint32_t k;
} Insn;

typedef struct {
    PyObject_HEAD
    Py_ssize_t length;
    Insn *insns;
} BpfProgram;

uint32_t ew_bpf_run(PyObject *object, const unsigned char *p, uint32_t wirelen, uint32_t buflen) {
    const Insn *pc = ((BpfProgram *)object)->insns;
    uint32_t a = 0, x = 0, k, mem[MEMWORDS] = {0};
    for (;; pc++) {
        switch (pc->code) {
        case RET | K: return pc->k;
        case RET | A: return a;
        case LD | W | ABS:
            k = pc->k;
            if (k > buflen || 4 > buflen - k)
                return 0;
            a = be32(p + k);
            continue;
        case LD | H | ABS:
            k = pc->k;
            if (k > buflen || 2 > buflen - k)
                return 0;
            a = be16(p + k);
            continue;
        case LD | B | ABS:
            k = pc->k;
            if (k >= buflen)
                return 0;
            a = p[k];
            continue;
        case LD | W | LEN: a = wirelen; continue;
        case LDX | W | LEN: x = wirelen; continue;
        case LD | W | IND:
            k = x + pc->k;
            if (pc->k > buflen || x > buflen - pc->k || 4 > buflen - k)
                return 0;
            a = be32(p + k);
            continue;
        case LD | H | IND:
            k = x + pc->k;
            if (x > buflen || pc->k > buflen - x || 2 > buflen - k)
                return 0;
            a = be16(p + k);
            continue;
        case LD | B | IND:
            k = x + pc->k;
            if (pc->k >= buflen || x >= buflen - pc->k)
                return 0;
            a = p[k];
            continue;
        case LDX | MSH | B:
            k = pc->k;
            if (k >= buflen)
                return 0;
            x = (p[k] & 0x0f) << 2;
            continue;
        case LD | IMM: a = pc->k; continue;
        case LDX | IMM: x = pc->k; continue;
        case LD | MEM: a = mem[pc->k]; continue;
        case LDX | MEM: x = mem[pc->k]; continue;
        case ST: mem[pc->k] = a; continue;
        case STX: mem[pc->k] = x; continue;
        case JMP | JA: pc += pc->k; continue;
        case JMP | JGT | K: pc += a > pc->k ? pc->jt : pc->jf; continue;
        case JMP | JGE | K: pc += a >= pc->k ? pc->jt : pc->jf; continue;
        case JMP | JEQ | K: pc += a == pc->k ? pc->jt : pc->jf; continue;
        case JMP | JSET | K: pc += a & pc->k ? pc->jt : pc->jf; continue;
        case JMP | JGT | X: pc += a > x ? pc->jt : pc->jf; continue;
        case JMP | JGE | X: pc += a >= x ? pc->jt : pc->jf; continue;
        case JMP | JEQ | X: pc += a == x ? pc->jt : pc->jf; continue;
        case JMP | JSET | X: pc += a & x ? pc->jt : pc->jf; continue;
        case ALU | ADD | X: a += x; continue;
        case ALU | SUB | X: a -= x; continue;
        case ALU | MUL | X: a *= x; continue;
        case ALU | DIV | X:
            if (x == 0)
                return 0;
            a /= x;
            continue;
        case ALU | MOD | X:
            if (x == 0)
                return 0;
            a %= x;
            continue;
        case ALU | AND | X: a &= x; continue;
        case ALU | OR | X: a |= x; continue;
        case ALU | XOR | X: a ^= x; continue;
        case ALU | LSH | X: a = x < 32 ? a << x : 0; continue;
        case ALU | RSH | X: a = x < 32 ? a >> x : 0; continue;
        case ALU | ADD | K: a += pc->k; continue;
        case ALU | SUB | K: a -= pc->k; continue;
        case ALU | MUL | K: a *= pc->k; continue;
        case ALU | DIV | K: a /= pc->k; continue; /* k != 0: validated */
        case ALU | MOD | K: a %= pc->k; continue;
        case ALU | AND | K: a &= pc->k; continue;
        case ALU | OR | K: a |= pc->k; continue;
        case ALU | XOR | K: a ^= pc->k; continue;
        case ALU | LSH | K: a <<= pc->k; continue; /* k < 32: validated */
        case ALU | RSH | K: a >>= pc->k; continue;
        case ALU | NEG: a = -a; continue;
        case MISC | TAX: x = a; continue;
        case MISC | TXA: a = x; continue;
        default: return 0; /* validated away */
        }
    }
}

/* bpf_validate(): known instructions only, jumps inside the program, scratch memory in range, no
 * division by a constant zero, and a return at the end. */
static int valid(const Insn *insns, Py_ssize_t length) {
    if (length < 1 || length > 4096)
        return 0;
    for (Py_ssize_t i = 0; i < length; i++) {
        const Insn *in = &insns[i];
        const uint32_t rest = (uint32_t)(length - i - 1);
        switch (in->code) {
        case RET | K: case RET | A: case LD | W | ABS: case LD | H | ABS: case LD | B | ABS:
        case LD | W | LEN: case LDX | W | LEN: case LD | W | IND: case LD | H | IND: case LD | B | IND:
        case LDX | MSH | B: case LD | IMM: case LDX | IMM: case ALU | ADD | X: case ALU | SUB | X:
        case ALU | MUL | X: case ALU | DIV | X: case ALU | MOD | X: case ALU | AND | X: case ALU | OR | X:
        case ALU | XOR | X: case ALU | LSH | X: case ALU | RSH | X: case ALU | ADD | K: case ALU | SUB | K:
        case ALU | MUL | K: case ALU | AND | K: case ALU | OR | K: case ALU | XOR | K: case ALU | NEG:
        case MISC | TAX: case MISC | TXA:
            break;
        case ALU | DIV | K: case ALU | MOD | K:
            if (in->k == 0)
                return 0;
            break;
        case ALU | LSH | K: case ALU | RSH | K:
            if (in->k >= 32)
                return 0;
            break;
        case LD | MEM: case LDX | MEM: case ST: case STX:
            if (in->k >= MEMWORDS)
                return 0;
            break;
        case JMP | JA:
            if (in->k >= rest)
                return 0;
            break;
        case JMP | JGT | K: case JMP | JGE | K: case JMP | JEQ | K: case JMP | JSET | K:
        case JMP | JGT | X: case JMP | JGE | X: case JMP | JEQ | X: case JMP | JSET | X:
            if (in->jt >= rest || in->jf >= rest)
                return 0;
            break;
        default:
            return 0;
        }
    }
    return (insns[length - 1].code & 0x07) == RET;
}

static PyObject *bpf_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    PyObject *listing;
    static char *keywords[] = {"instructions", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O:BpfProgram", keywords, &listing))
        return NULL;
    PyObject *items = PySequence_Fast(listing, "BpfProgram() takes a sequence of (code, jt, jf, k)");
    if (items == NULL)
        return NULL;
    const Py_ssize_t length = PySequence_Fast_GET_SIZE(items);
    Insn *insns = PyMem_Calloc(length ? length : 1, sizeof(Insn));
    if (insns == NULL) {
        Py_DECREF(items);
        return PyErr_NoMemory();
    }
    for (Py_ssize_t i = 0; i < length; i++) {
        unsigned int code, jt, jf;
        unsigned long k;
        if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(items, i), "IIIk", &code, &jt, &jf, &k)
            || code > 0xffff || jt > 0xff || jf > 0xff || k > 0xffffffffUL) {
            if (!PyErr_Occurred())
                PyErr_Format(PyExc_ValueError, "BpfProgram(): instruction %zd out of range", i);
            Py_DECREF(items);
            PyMem_Free(insns);
            return NULL;
        }
        insns[i] = (Insn){(uint16_t)code, (uint8_t)jt, (uint8_t)jf, (uint32_t)k};
    }
    Py_DECREF(items);
    if (!valid(insns, length)) {
        PyMem_Free(insns);
        PyErr_SetString(PyExc_ValueError, "BpfProgram(): not a valid classic BPF program");
        return NULL;
    }
    BpfProgram *program = (BpfProgram *)type->tp_alloc(type, 0);
    if (program == NULL) {
        PyMem_Free(insns);
        return NULL;
    }
    program->length = length, program->insns = insns;
    return (PyObject *)program;
}

static void bpf_dealloc(BpfProgram *program) {
    PyMem_Free(program->insns);
    Py_TYPE(program)->tp_free((PyObject *)program);
}

static PyObject *bpf_matches(BpfProgram *program, PyObject *args) {
    Py_buffer packet;
    Py_ssize_t wirelen = -1;
    if (!PyArg_ParseTuple(args, "y*|n:matches", &packet, &wirelen))
        return NULL;
    if (packet.len > UINT32_MAX || wirelen > UINT32_MAX) {
        PyBuffer_Release(&packet);
        PyErr_SetString(PyExc_ValueError, "matches(): packet too long");
        return NULL;
    }
    const uint32_t wire = wirelen < 0 ? (uint32_t)packet.len : (uint32_t)wirelen;
    const uint32_t kept = ew_bpf_run((PyObject *)program, packet.buf, wire, (uint32_t)packet.len);
    PyBuffer_Release(&packet);
    return PyBool_FromLong(kept != 0);
}

static PyMethodDef bpf_methods[] = {
    {"matches", (PyCFunction)bpf_matches, METH_VARARGS,
     "matches(packet, wirelen=len(packet)) -> bool: whether the program keeps the packet"},
    {NULL},
};

PyTypeObject ew_BpfProgramType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "egresswatch._fastpath.BpfProgram",
    .tp_doc = "BpfProgram(instructions): a classic BPF program, from libpcap's (code, jt, jf, k) list.",
    .tp_basicsize = sizeof(BpfProgram),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = bpf_new,
    .tp_dealloc = (destructor)bpf_dealloc,
    .tp_methods = bpf_methods,
};

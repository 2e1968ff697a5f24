#include "_fastpath.h"

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

/* The value for the `size` key bytes at `key` in `table` (a FastTable): borrowed, NULL when absent. */
PyObject *ew_fast_table_lookup(PyObject *object, const unsigned char *key, Py_ssize_t size) {
    FastTable *table = (FastTable *)object;
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
    PyObject *value = ew_fast_table_lookup((PyObject *)table, (const unsigned char *)PyBytes_AS_STRING(key), PyBytes_GET_SIZE(key));
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
    PyObject *value = ew_fast_table_lookup((PyObject *)table, (const unsigned char *)PyBytes_AS_STRING(args[0]), PyBytes_GET_SIZE(args[0]));
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

PyTypeObject ew_FastTableType = {
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

int ew_fast_table_init(void) {
    hash_bytes = PyHash_GetFuncDef()->hash;
    return PyType_Ready(&ew_FastTableType);
}

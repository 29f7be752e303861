/* C accelerators of RFC 6455 framing (see framing.py for the rules they follow).
 *
 * apply_mask:       XOR a payload with a 4-byte mask, eight bytes at a time.
 * read_data_frames: the common case of the reader in one C loop: whole, final,
 *                   uncompressed text/binary frames; it stops at the first frame
 *                   that is anything else (or incomplete, or breaks a rule) and
 *                   leaves that frame to the Python reader, which knows every rule.
 * build_frame:      one unmasked (server) frame in a single allocation.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

static void
xor_mask(const unsigned char *src, unsigned char *dst, Py_ssize_t n, const unsigned char *m, Py_ssize_t offset)
{
    unsigned char rotated[8];
    for (int k = 0; k < 8; k++) {
        rotated[k] = m[(k + offset) & 3];
    }
    uint64_t word_mask;
    memcpy(&word_mask, rotated, 8);
    Py_ssize_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t word;
        memcpy(&word, src + i, 8);
        word ^= word_mask;
        memcpy(dst + i, &word, 8);
    }
    for (; i < n; i++) {
        dst[i] = src[i] ^ rotated[i & 7];
    }
}

static PyObject *
apply_mask(PyObject *self, PyObject *args)
{
    Py_buffer data, mask;
    Py_ssize_t offset = 0;
    if (!PyArg_ParseTuple(args, "y*y*|n", &data, &mask, &offset)) {
        return NULL;
    }
    PyObject *result = NULL;
    if (mask.len != 4) {
        PyErr_SetString(PyExc_ValueError, "mask must be 4 bytes");
    }
    else if ((result = PyBytes_FromStringAndSize(NULL, data.len)) != NULL) {
        xor_mask(data.buf, (unsigned char *)PyBytes_AS_STRING(result), data.len, mask.buf, offset);
    }
    PyBuffer_Release(&data);
    PyBuffer_Release(&mask);
    return result;
}

#define STACK_PAYLOAD 2048

/* One fast-path data frame at p (end - p bytes available), appended to events.
 * Returns the frame's total size, 0 if it is not a fast-path frame, -1 on error. */
static Py_ssize_t
read_one(const unsigned char *p, const unsigned char *end, int masked, Py_ssize_t max_size, PyObject *events)
{
    Py_ssize_t avail = end - p;
    if (avail < 2) {
        return 0;
    }
    unsigned char b0 = p[0], b1 = p[1];
    if (b0 != 0x81 && b0 != 0x82) { /* FIN, no RSV bits, text or binary */
        return 0;
    }
    if (((b1 & 0x80) != 0) != masked) {
        return 0;
    }
    uint64_t length = b1 & 0x7F;
    Py_ssize_t header = 2;
    if (length == 126) {
        if (avail < 4) {
            return 0;
        }
        length = ((uint64_t)p[2] << 8) | p[3];
        header = 4;
    }
    else if (length == 127) {
        if (avail < 10) {
            return 0;
        }
        length = 0;
        for (int k = 2; k < 10; k++) {
            length = (length << 8) | p[k];
        }
        header = 10;
    }
    const unsigned char *mask = NULL;
    if (masked) {
        mask = p + header;
        header += 4;
    }
    if (avail < header) {
        return 0;
    }
    if (length > (uint64_t)max_size || (uint64_t)(avail - header) < length) {
        return 0;
    }
    Py_ssize_t n = (Py_ssize_t)length;
    const unsigned char *src = p + header;
    PyObject *payload;
    if (b0 == 0x82) {
        payload = PyBytes_FromStringAndSize(NULL, n);
        if (payload == NULL) {
            return -1;
        }
        if (mask != NULL) {
            xor_mask(src, (unsigned char *)PyBytes_AS_STRING(payload), n, mask, 0);
        }
        else {
            memcpy(PyBytes_AS_STRING(payload), src, n);
        }
    }
    else {
        unsigned char stack[STACK_PAYLOAD];
        unsigned char *plain = (unsigned char *)src;
        if (mask != NULL) {
            plain = n <= STACK_PAYLOAD ? stack : PyMem_Malloc(n);
            if (plain == NULL) {
                PyErr_NoMemory();
                return -1;
            }
            xor_mask(src, plain, n, mask, 0);
        }
        payload = PyUnicode_DecodeUTF8((const char *)plain, n, NULL);
        if (plain != stack && plain != src) {
            PyMem_Free(plain);
        }
        if (payload == NULL) {
            if (PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) {
                PyErr_Clear(); /* the Python reader reports it, with the right close code */
                return 0;
            }
            return -1;
        }
    }
    PyObject *event = Py_BuildValue("(iN)", b0 & 0x0F, payload);
    if (event == NULL) {
        return -1;
    }
    int failed = PyList_Append(events, event);
    Py_DECREF(event);
    return failed ? -1 : header + n;
}

static PyObject *
read_data_frames(PyObject *self, PyObject *args)
{
    Py_buffer data;
    Py_ssize_t pos, max_size;
    int masked;
    PyObject *events;
    if (!PyArg_ParseTuple(args, "y*nnpO!", &data, &pos, &max_size, &masked, &PyList_Type, &events)) {
        return NULL;
    }
    if (pos < 0 || pos > data.len) {
        PyBuffer_Release(&data);
        PyErr_SetString(PyExc_ValueError, "pos out of range");
        return NULL;
    }
    const unsigned char *base = data.buf;
    const unsigned char *end = base + data.len;
    for (;;) {
        Py_ssize_t used = read_one(base + pos, end, masked, max_size, events);
        if (used < 0) {
            PyBuffer_Release(&data);
            return NULL;
        }
        if (used == 0) {
            break;
        }
        pos += used;
    }
    PyBuffer_Release(&data);
    return PyLong_FromSsize_t(pos);
}

static PyObject *
build_frame(PyObject *self, PyObject *args)
{
    int opcode, rsv1 = 0;
    PyObject *payload;
    if (!PyArg_ParseTuple(args, "iO|p", &opcode, &payload, &rsv1)) {
        return NULL;
    }
    PyObject *encoded = NULL; /* a temporary copy: UTF-8 of a non-ASCII str, or a non-contiguous buffer */
    Py_buffer view = {0};
    const char *src;
    Py_ssize_t n;
    if (PyUnicode_Check(payload)) {
        if (PyUnicode_IS_ASCII(payload)) {
            src = (const char *)PyUnicode_DATA(payload);
            n = PyUnicode_GET_LENGTH(payload);
        }
        else {
            encoded = PyUnicode_AsUTF8String(payload);
            if (encoded == NULL) {
                return NULL;
            }
            src = PyBytes_AS_STRING(encoded);
            n = PyBytes_GET_SIZE(encoded);
        }
    }
    else if (PyObject_GetBuffer(payload, &view, PyBUF_SIMPLE) == 0) {
        src = view.buf;
        n = view.len;
    }
    else {
        if (!PyErr_ExceptionMatches(PyExc_BufferError)) {
            return NULL; /* not a buffer at all: TypeError */
        }
        PyErr_Clear(); /* a non-contiguous buffer: copy it into one piece first */
        encoded = PyBytes_FromObject(payload);
        if (encoded == NULL) {
            return NULL;
        }
        src = PyBytes_AS_STRING(encoded);
        n = PyBytes_GET_SIZE(encoded);
    }
    Py_ssize_t header = n < 126 ? 2 : n < 65536 ? 4 : 10;
    PyObject *frame = PyBytes_FromStringAndSize(NULL, header + n);
    if (frame != NULL) {
        unsigned char *out = (unsigned char *)PyBytes_AS_STRING(frame);
        out[0] = 0x80 | (rsv1 ? 0x40 : 0) | (opcode & 0x0F);
        if (header == 2) {
            out[1] = (unsigned char)n;
        }
        else if (header == 4) {
            out[1] = 126;
            out[2] = (unsigned char)(n >> 8);
            out[3] = (unsigned char)n;
        }
        else {
            out[1] = 127;
            for (int k = 0; k < 8; k++) {
                out[2 + k] = (unsigned char)((uint64_t)n >> (56 - 8 * k));
            }
        }
        memcpy(out + header, src, n);
    }
    Py_XDECREF(encoded);
    if (view.obj != NULL) {
        PyBuffer_Release(&view);
    }
    return frame;
}

static PyMethodDef methods[] = {
    {"apply_mask", apply_mask, METH_VARARGS,
     "apply_mask(data, mask, offset=0) -> bytes: XOR data with the 4-byte mask, "
     "starting at mask position offset."},
    {"read_data_frames", read_data_frames, METH_VARARGS,
     "read_data_frames(data, pos, max_size, masked, events) -> int: append (opcode, payload) "
     "for each whole, final, uncompressed text or binary frame from pos on (text decoded and "
     "validated as UTF-8); return where the first other frame starts."},
    {"build_frame", build_frame, METH_VARARGS,
     "build_frame(opcode, payload, rsv1=False) -> bytes: one final, unmasked frame; "
     "a str payload is encoded as UTF-8."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "hubbub.transport._speedups", NULL, -1, methods,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    return PyModule_Create(&module);
}

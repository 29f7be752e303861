/* XOR masking of WebSocket payloads (RFC 6455 section 5.3), eight bytes at a time. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

static PyObject *
apply_mask(PyObject *self, PyObject *args)
{
    Py_buffer data, mask;
    Py_ssize_t offset = 0;
    if (!PyArg_ParseTuple(args, "y*y*|n", &data, &mask, &offset)) {
        return NULL;
    }
    if (mask.len != 4) {
        PyBuffer_Release(&data);
        PyBuffer_Release(&mask);
        PyErr_SetString(PyExc_ValueError, "mask must be 4 bytes");
        return NULL;
    }
    PyObject *result = PyBytes_FromStringAndSize(NULL, data.len);
    if (result == NULL) {
        PyBuffer_Release(&data);
        PyBuffer_Release(&mask);
        return NULL;
    }
    const unsigned char *src = (const unsigned char *)data.buf;
    unsigned char *dst = (unsigned char *)PyBytes_AS_STRING(result);
    const unsigned char *m = (const unsigned char *)mask.buf;
    unsigned char rotated[8];
    for (int k = 0; k < 8; k++) {
        rotated[k] = m[(k + offset) & 3];
    }
    Py_ssize_t n = data.len;
    Py_ssize_t i = 0;
    uint64_t word_mask;
    memcpy(&word_mask, rotated, 8);
    for (; i + 8 <= n; i += 8) {
        uint64_t word;
        memcpy(&word, src + i, 8);
        word ^= word_mask;
        memcpy(dst + i, &word, 8);
    }
    for (; i < n; i++) {
        dst[i] = src[i] ^ rotated[i & 7];
    }
    PyBuffer_Release(&data);
    PyBuffer_Release(&mask);
    return result;
}

static PyMethodDef methods[] = {
    {"apply_mask", apply_mask, METH_VARARGS,
     "apply_mask(data, mask, offset=0) -> bytes: XOR data with the 4-byte mask, "
     "starting at mask position offset."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "hubbub.transport._mask", NULL, -1, methods,
};

PyMODINIT_FUNC
PyInit__mask(void)
{
    return PyModule_Create(&module);
}

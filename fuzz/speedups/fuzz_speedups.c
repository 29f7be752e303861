/* libFuzzer harness of hubbub's C speed-ups, built with AddressSanitizer and UBSan.
 *
 * The extension's source is included whole, so its static functions are called directly
 * inside an embedded interpreter. For each input: read_data_frames from an arbitrary position
 * with an arbitrary limit and masking (its result must stay within the buffer and every event
 * must fit the bytes it came from); build_frame of the input as bytes and, when valid UTF-8,
 * as str (length fields must match the payload, and reading the frame back must give the same
 * payload); apply_mask at any offset (applying it twice is the identity).
 *
 * Build and run: fuzz/speedups/build.sh, then
 *   ASAN_OPTIONS=detect_leaks=0 PYTHONMALLOC=malloc fuzz/speedups/build/fuzz_speedups fuzz/corpus/speedups
 */
#include "../../src/hubbub/transport/_speedups.c"

#include <stdlib.h>

#define CHECK(cond)                                                                   \
    do {                                                                              \
        if (!(cond)) {                                                                \
            fprintf(stderr, "check failed: %s (line %d)\n", #cond, __LINE__);         \
            abort();                                                                  \
        }                                                                             \
    } while (0)

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    Py_InitializeEx(0);
    return 0;
}

static PyObject *
call(PyObject *(*fn)(PyObject *, PyObject *), PyObject *args)
{
    PyObject *result = fn(NULL, args);
    Py_DECREF(args);
    return result;
}

static void
check_read(const uint8_t *data, size_t size)
{
    uint8_t flags = data[0];
    Py_ssize_t len = (Py_ssize_t)size - 3;
    PyObject *buf = PyBytes_FromStringAndSize((const char *)data + 3, len);
    PyObject *events = PyList_New(0);
    Py_ssize_t pos = len ? data[1] % (len + 1) : 0;
    Py_ssize_t max_size = (flags & 2) ? ((Py_ssize_t)1 << 20) : (Py_ssize_t)data[2] * 16;
    int masked = !(flags & 1);
    PyObject *end = call(read_data_frames, Py_BuildValue("(OnniO)", buf, pos, max_size, masked, events));
    CHECK(end != NULL);
    Py_ssize_t stop = PyLong_AsSsize_t(end);
    CHECK(stop >= pos && stop <= len);
    Py_ssize_t payload_total = 0;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(events); i++) {
        PyObject *event = PyList_GET_ITEM(events, i);
        CHECK(PyTuple_Check(event) && PyTuple_GET_SIZE(event) == 2);
        PyObject *payload = PyTuple_GET_ITEM(event, 1);
        Py_ssize_t n = PyBytes_Check(payload) ? PyBytes_GET_SIZE(payload) : PyUnicode_GET_LENGTH(payload);
        CHECK(n <= max_size);
        payload_total += n;
    }
    CHECK(payload_total <= stop - pos);
    Py_DECREF(end);
    Py_DECREF(events);
    Py_DECREF(buf);
}

static void
check_build(const uint8_t *data, size_t size)
{
    int opcode = data[0] & 0x0F;
    int rsv1 = (data[0] >> 4) & 1;
    PyObject *payload = PyBytes_FromStringAndSize((const char *)data + 1, (Py_ssize_t)size - 1);
    PyObject *frame = call(build_frame, Py_BuildValue("(iOi)", opcode, payload, rsv1));
    CHECK(frame != NULL);
    const unsigned char *f = (const unsigned char *)PyBytes_AS_STRING(frame);
    Py_ssize_t n = PyBytes_GET_SIZE(payload);
    Py_ssize_t header = n < 126 ? 2 : (n < 65536 ? 4 : 10);
    CHECK(PyBytes_GET_SIZE(frame) == header + n);
    CHECK(f[0] == (0x80 | (rsv1 ? 0x40 : 0) | opcode));
    CHECK(memcmp(f + header, data + 1, n) == 0);
    if (opcode == 2 && !rsv1) { /* read it back as a server-to-client frame */
        PyObject *events = PyList_New(0);
        PyObject *end = call(read_data_frames, Py_BuildValue("(OnniO)", frame, (Py_ssize_t)0, n, 0, events));
        CHECK(end != NULL && PyLong_AsSsize_t(end) == header + n && PyList_GET_SIZE(events) == 1);
        PyObject *back = PyTuple_GET_ITEM(PyList_GET_ITEM(events, 0), 1);
        CHECK(PyBytes_GET_SIZE(back) == n && memcmp(PyBytes_AS_STRING(back), data + 1, n) == 0);
        Py_DECREF(end);
        Py_DECREF(events);
    }
    Py_DECREF(frame);
    PyObject *text = PyUnicode_DecodeUTF8((const char *)data + 1, (Py_ssize_t)size - 1, NULL);
    if (text == NULL) {
        PyErr_Clear();
    }
    else {
        PyObject *tframe = call(build_frame, Py_BuildValue("(iOi)", opcode, text, rsv1));
        CHECK(tframe != NULL && PyBytes_GET_SIZE(tframe) == header + n);
        CHECK(memcmp(PyBytes_AS_STRING(tframe) + header, data + 1, n) == 0);
        Py_DECREF(tframe);
        Py_DECREF(text);
    }
    Py_DECREF(payload);
}

static void
check_mask(const uint8_t *data, size_t size)
{
    if (size < 6) {
        return;
    }
    PyObject *mask = PyBytes_FromStringAndSize((const char *)data + 1, 4);
    PyObject *payload = PyBytes_FromStringAndSize((const char *)data + 5, (Py_ssize_t)size - 5);
    Py_ssize_t offset = data[0];
    PyObject *once = call(apply_mask, Py_BuildValue("(OOn)", payload, mask, offset));
    CHECK(once != NULL && PyBytes_GET_SIZE(once) == PyBytes_GET_SIZE(payload));
    for (Py_ssize_t i = 0; i < PyBytes_GET_SIZE(payload); i++) {
        CHECK((unsigned char)PyBytes_AS_STRING(once)[i] ==
              ((unsigned char)PyBytes_AS_STRING(payload)[i] ^ data[1 + (offset + i) % 4]));
    }
    PyObject *twice = call(apply_mask, Py_BuildValue("(OOn)", once, mask, offset));
    CHECK(twice != NULL && PyObject_RichCompareBool(twice, payload, Py_EQ) == 1);
    Py_DECREF(twice);
    Py_DECREF(once);
    Py_DECREF(payload);
    Py_DECREF(mask);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3) {
        return 0;
    }
    check_read(data, size);
    check_build(data, size);
    check_mask(data, size);
    CHECK(!PyErr_Occurred());
    return 0;
}

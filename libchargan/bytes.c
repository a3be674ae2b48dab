/* bytes.c - little-endian serialisation whatever the host, with a growing
 * writer and a bounds-checked reader shared by every file format. */
#include "internal.h"

#include <string.h>

void cg_writer_init(cg_writer *w)
{
    memset(w, 0, sizeof *w);
}

void cg_writer_free(cg_writer *w)
{
    cg_free(w->data);
    memset(w, 0, sizeof *w);
}

static bool reserve(cg_writer *w, size_t n)
{
    if (w->failed)
        return false;
    if (n > SIZE_MAX - w->size) {
        w->failed = true;
        return false;
    }
    if (w->size + n <= w->cap)
        return true;
    size_t cap = w->cap ? w->cap : 256;
    while (cap < w->size + n)
        cap = cap > SIZE_MAX / 2 ? w->size + n : cap * 2;
    uint8_t *p = cg_realloc(w->data, cap);
    if (!p) {
        w->failed = true;
        return false;
    }
    w->data = p;
    w->cap = cap;
    return true;
}

void cg_put_bytes(cg_writer *w, const void *p, size_t n)
{
    if (n == 0 || !reserve(w, n))
        return;
    memcpy(w->data + w->size, p, n);
    w->size += n;
}

void cg_put_u8(cg_writer *w, uint8_t v)
{
    cg_put_bytes(w, &v, 1);
}

static void store_u32(uint8_t *b, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        b[i] = (uint8_t)(v >> (8 * i));
}

static void store_u64(uint8_t *b, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)(v >> (8 * i));
}

void cg_put_u32(cg_writer *w, uint32_t v)
{
    uint8_t b[4];
    store_u32(b, v);
    cg_put_bytes(w, b, 4);
}

void cg_put_u64(cg_writer *w, uint64_t v)
{
    uint8_t b[8];
    store_u64(b, v);
    cg_put_bytes(w, b, 8);
}

void cg_put_f32(cg_writer *w, float v)
{
    uint32_t u;
    memcpy(&u, &v, 4);
    cg_put_u32(w, u);
}

void cg_put_f64(cg_writer *w, double v)
{
    uint64_t u;
    memcpy(&u, &v, 8);
    cg_put_u64(w, u);
}

void cg_put_f32_array(cg_writer *w, const float *v, size_t n)
{
    size_t bytes;
    if (!cg_mul_size(n, 4, &bytes) || !reserve(w, bytes)) {
        w->failed = true;
        return;
    }
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &v[i], 4);
        store_u32(w->data + w->size + 4 * i, u);
    }
    w->size += bytes;
}

void cg_patch_u32(cg_writer *w, size_t offset, uint32_t v)
{
    if (!w->failed && offset + 4 <= w->size)
        store_u32(w->data + offset, v);
}

void cg_patch_u64(cg_writer *w, size_t offset, uint64_t v)
{
    if (!w->failed && offset + 8 <= w->size)
        store_u64(w->data + offset, v);
}

void cg_reader_init(cg_reader *r, const void *data, size_t size)
{
    r->data = data;
    r->size = size;
    r->pos = 0;
}

size_t cg_reader_left(const cg_reader *r)
{
    return r->size - r->pos;
}

bool cg_get_view(cg_reader *r, const uint8_t **p, size_t n)
{
    if (n > cg_reader_left(r))
        return false;
    *p = r->data + r->pos;
    r->pos += n;
    return true;
}

bool cg_get_bytes(cg_reader *r, void *dst, size_t n)
{
    const uint8_t *p;
    if (!cg_get_view(r, &p, n))
        return false;
    if (n)
        memcpy(dst, p, n);
    return true;
}

bool cg_get_u8(cg_reader *r, uint8_t *v)
{
    return cg_get_bytes(r, v, 1);
}

bool cg_get_u32(cg_reader *r, uint32_t *v)
{
    const uint8_t *b;
    if (!cg_get_view(r, &b, 4))
        return false;
    *v = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
    return true;
}

bool cg_get_u64(cg_reader *r, uint64_t *v)
{
    const uint8_t *b;
    if (!cg_get_view(r, &b, 8))
        return false;
    uint64_t x = 0;
    for (int i = 7; i >= 0; i--)
        x = x << 8 | b[i];
    *v = x;
    return true;
}

bool cg_get_f32(cg_reader *r, float *v)
{
    uint32_t u;
    if (!cg_get_u32(r, &u))
        return false;
    memcpy(v, &u, 4);
    return true;
}

bool cg_get_f64(cg_reader *r, double *v)
{
    uint64_t u;
    if (!cg_get_u64(r, &u))
        return false;
    memcpy(v, &u, 8);
    return true;
}

bool cg_get_f32_array(cg_reader *r, float *dst, size_t n)
{
    size_t bytes;
    if (!cg_mul_size(n, 4, &bytes) || bytes > cg_reader_left(r))
        return false;
    for (size_t i = 0; i < n; i++)
        cg_get_f32(r, &dst[i]);
    return true;
}

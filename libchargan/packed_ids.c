/* packed_ids.c - token ids stored in the narrowest width (see packed_ids.h). */
#include "packed_ids.h"
#include "internal.h"

#include <string.h>

static int width_for(int32_t top)
{
    return top <= UINT8_MAX ? 1 : top <= UINT16_MAX ? 2 : 4;
}

bool cg_packed_ids_begin(cg_packed_ids *p, size_t cap, int32_t max_id)
{
    memset(p, 0, sizeof *p);
    p->width = width_for(max_id);
    return cg_packed_ids_reserve(p, cap);
}

bool cg_packed_ids_reserve(cg_packed_ids *p, size_t cap)
{
    if (cap <= p->cap)
        return true;
    size_t bytes;
    void *larger;
    if (!cg_mul_size(cap, (size_t)p->width, &bytes) || !(larger = cg_realloc(p->data, bytes)))
        return false;
    p->data = larger;
    p->cap = cap;
    return true;
}

/* Stores count ids at index `at` of an array of the given width. */
static void store(void *data, int width, size_t at, const int32_t *ids, size_t count)
{
    if (width == 1) {
        uint8_t *d = (uint8_t *)data + at;
        for (size_t i = 0; i < count; i++)
            d[i] = (uint8_t)ids[i];
    } else if (width == 2) {
        uint16_t *d = (uint16_t *)data + at;
        for (size_t i = 0; i < count; i++)
            d[i] = (uint16_t)ids[i];
    } else if (count > 0) {
        memcpy((int32_t *)data + at, ids, count * sizeof(int32_t));
    }
}

void cg_packed_ids_append(cg_packed_ids *p, const int32_t *ids, size_t count)
{
    for (size_t i = 0; i < count; i++)
        p->top = ids[i] > p->top ? ids[i] : p->top;
    store(p->data, p->width, p->n, ids, count);
    p->n += count;
}

void cg_packed_ids_finish(cg_packed_ids *p)
{
    int width = width_for(p->top);
    if (width < p->width) {
        /* in place, front to back: id k moves down from k * p->width */
        int32_t id;
        for (size_t k = 0; k < p->n; k++) {
            cg_packed_ids_read(p, k, 1, &id);
            store(p->data, width, k, &id, 1);
        }
        p->width = width;
    }
    if (p->n == 0) {
        cg_free(p->data);
        p->data = NULL;
    } else if (p->n < p->cap) {
        /* a shrink that fails keeps the larger block, which is as good */
        void *smaller = cg_realloc(p->data, p->n * (size_t)p->width);
        p->data = smaller ? smaller : p->data;
    }
    p->cap = p->n;
}

bool cg_packed_ids_init(cg_packed_ids *p, const int32_t *ids, size_t n)
{
    int32_t top = 0;
    for (size_t i = 0; i < n; i++)
        top = ids[i] > top ? ids[i] : top;
    if (!cg_packed_ids_begin(p, n, top))
        return false;
    cg_packed_ids_append(p, ids, n);
    cg_packed_ids_finish(p);
    return true;
}

void cg_packed_ids_free(cg_packed_ids *p)
{
    cg_free(p->data);
    memset(p, 0, sizeof *p);
}

void cg_packed_ids_read(const cg_packed_ids *p, size_t first, size_t count, int32_t *dst)
{
    if (p->width == 1) {
        const uint8_t *s = (const uint8_t *)p->data + first;
        for (size_t k = 0; k < count; k++)
            dst[k] = s[k];
    } else if (p->width == 2) {
        const uint16_t *s = (const uint16_t *)p->data + first;
        for (size_t k = 0; k < count; k++)
            dst[k] = s[k];
    } else if (count > 0) {
        memcpy(dst, (const int32_t *)p->data + first, count * sizeof(int32_t));
    }
}

size_t cg_packed_ids_bytes(const cg_packed_ids *p)
{
    return p->n * (size_t)p->width;
}

/* packed_ids.c - token ids stored in the narrowest width (see packed_ids.h). */
#include "packed_ids.h"
#include "internal.h"

#include <string.h>

static int width_for(const int32_t *ids, size_t n)
{
    int32_t top = 0;
    for (size_t i = 0; i < n; i++)
        top = ids[i] > top ? ids[i] : top;
    return top <= UINT8_MAX ? 1 : top <= UINT16_MAX ? 2 : 4;
}

bool cg_packed_ids_init(cg_packed_ids *p, const int32_t *ids, size_t n)
{
    memset(p, 0, sizeof *p);
    int width = width_for(ids, n);
    void *data = NULL;
    if (n > 0 && !(data = cg_malloc(n * (size_t)width))) /* n * 4 fits: ids is n int32s */
        return false;
    if (width == 1) {
        uint8_t *d = data;
        for (size_t i = 0; i < n; i++)
            d[i] = (uint8_t)ids[i];
    } else if (width == 2) {
        uint16_t *d = data;
        for (size_t i = 0; i < n; i++)
            d[i] = (uint16_t)ids[i];
    } else if (n > 0) {
        memcpy(data, ids, n * sizeof(int32_t));
    }
    p->data = data;
    p->n = n;
    p->width = width;
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

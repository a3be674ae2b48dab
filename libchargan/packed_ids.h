/* packed_ids.h - a trainer's corpus of token ids, packed one, two or four
 * bytes per id: the narrowest width that holds its largest id.  A character
 * corpus rarely has 256 distinct characters, so it usually takes a quarter
 * of the memory of int32 ids (1.1 MB instead of 4.5 for tinyshakespeare). */
#ifndef CHARGAN_PACKED_IDS_H
#define CHARGAN_PACKED_IDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct cg_packed_ids {
    void *data;  /* n ids of width bytes each; NULL when n is 0 */
    size_t n;
    int width;   /* 1, 2 or 4 */
    size_t cap;  /* room at data, in ids, while being built */
    int32_t top; /* the largest id stored */
} cg_packed_ids;

/* Packs the n ids (each >= 0, already checked) into *p, which must be empty
 * (zeroed or freed).  False, *p left empty, if out of memory. */
bool cg_packed_ids_init(cg_packed_ids *p, const int32_t *ids, size_t n);

/* The same built from pieces, for ids made as they are stored (a corpus
 * being encoded): begin makes room for up to cap ids none above max_id,
 * append stores count more (p->n + count <= cap, each in 0..max_id), and
 * finish narrows to the width of the largest id stored and gives back the
 * room not used, so the result is cg_packed_ids_init's of the same ids.
 * begin: false, *p left empty, if out of memory. */
bool cg_packed_ids_begin(cg_packed_ids *p, size_t cap, int32_t max_id);
/* Makes room for up to cap ids in total (more than begin's); false, *p as it
 * was, if out of memory. */
bool cg_packed_ids_reserve(cg_packed_ids *p, size_t cap);
void cg_packed_ids_append(cg_packed_ids *p, const int32_t *ids, size_t count);
void cg_packed_ids_finish(cg_packed_ids *p);
void cg_packed_ids_free(cg_packed_ids *p);

/* dst[k] = id first + k, for k < count; first + count <= p->n. */
void cg_packed_ids_read(const cg_packed_ids *p, size_t first, size_t count, int32_t *dst);

/* The packed bytes, for a checksum: p->n * p->width of them. */
size_t cg_packed_ids_bytes(const cg_packed_ids *p);

#endif

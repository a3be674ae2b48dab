/* fuzz_common.c - scratch files and checksum repair for the fuzz targets. */
#define _POSIX_C_SOURCE 200809L
#include "fuzz_common.h"

#include "internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void fz_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("fuzz invariant broken: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    abort();
}

static char scratch_path[4096];

static void remove_scratch(void)
{
    if (scratch_path[0])
        unlink(scratch_path);
}

const char *fz_scratch_file(const void *data, size_t size)
{
    if (!scratch_path[0]) {
        const char *dir = getenv("TMPDIR");
        snprintf(scratch_path, sizeof scratch_path, "%s/chargan-fuzz-%ld.bin",
                 dir && *dir ? dir : "/tmp", (long)getpid());
        atexit(remove_scratch);
    }
    /* A fresh inode each time: ext4 flushes a file truncated and rewritten
     * in place when it is closed (auto_da_alloc), a disk write per input. */
    unlink(scratch_path);
    FILE *f = fopen(scratch_path, "wb");
    if (!f)
        return NULL;
    int ok = fwrite(data, 1, size, f) == size;
    ok = fclose(f) == 0 && ok;
    return ok ? scratch_path : NULL;
}

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get_u64(const uint8_t *p)
{
    return (uint64_t)get_u32(p) | (uint64_t)get_u32(p + 4) << 32;
}

static void put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint8_t *copy(const uint8_t *data, size_t size)
{
    uint8_t *c = malloc(size ? size : 1);
    if (c && size)
        memcpy(c, data, size);
    return c;
}

/* The container of docs/FORMATS.md: a 24-byte header (magic 8, version 4,
 * byte order 4, section count 4, CRC of the first 20 bytes 4), then per
 * section tag 4, flags 4, length 8, payload, CRC of all of that 4. */
uint8_t *fz_fix_checkpoint(const uint8_t *data, size_t size)
{
    uint8_t *c = copy(data, size);
    if (!c || size < 24)
        return c;
    put_u32(c + 20, cg_crc32(0, c, 20));
    uint32_t n = get_u32(c + 16);
    size_t pos = 24;
    for (uint32_t i = 0; i < n && size - pos >= 16; i++) {
        uint64_t len = get_u64(c + pos + 8);
        size_t left = size - pos - 16;
        if (len > left || left - len < 4)
            break;
        put_u32(c + pos + 16 + len, cg_crc32(0, c + pos, 16 + (size_t)len));
        pos += 20 + (size_t)len;
    }
    return c;
}

const uint8_t *fz_checkpoint_section(const uint8_t *data, size_t size, const char *tag,
                                     size_t *length)
{
    if (size < 24)
        return NULL;
    uint32_t n = get_u32(data + 16);
    size_t pos = 24;
    for (uint32_t i = 0; i < n && size - pos >= 16; i++) {
        uint64_t len = get_u64(data + pos + 8);
        size_t left = size - pos - 16;
        if (len > left || left - len < 4)
            break;
        if (memcmp(data + pos, tag, 4) == 0) {
            *length = (size_t)len;
            return data + pos + 16;
        }
        pos += 20 + (size_t)len;
    }
    return NULL;
}

uint8_t *fz_fix_vocabulary(const uint8_t *data, size_t size)
{
    uint8_t *c = copy(data, size);
    if (c && size >= 4)
        put_u32(c + size - 4, cg_crc32(0, c, size - 4));
    return c;
}

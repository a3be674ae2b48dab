/* error.c - status names and the per-handle / per-thread failure messages. */
#include "internal.h"

#include <stdio.h>
#include <string.h>

static _Thread_local char thread_msg[CG_ERRMSG_MAX];
static _Thread_local int thread_errno;

const char *chargan_strerror(chargan_status status)
{
    switch (status) {
    case CHARGAN_OK: return "success";
    case CHARGAN_E_INVALID: return "invalid argument";
    case CHARGAN_E_NOMEM: return "out of memory";
    case CHARGAN_E_IO: return "input/output error";
    case CHARGAN_E_FORMAT: return "bad format";
    case CHARGAN_E_UNSUPPORTED: return "unsupported version or feature";
    case CHARGAN_E_NUMERIC: return "numeric failure (NaN or infinity)";
    case CHARGAN_E_STATE: return "call out of order";
    case CHARGAN_E_UTF8: return "invalid UTF-8";
    case CHARGAN_E_RANGE: return "out of range";
    case CHARGAN_E_CANCELLED: return "cancelled";
    case CHARGAN_E_NOT_FOUND: return "not found";
    }
    return "unknown status";
}

const char *chargan_last_error(void)
{
    return thread_msg;
}

int chargan_last_errno(void)
{
    return thread_errno;
}

const char *cg_thread_error(void)
{
    return thread_msg;
}

/* Room on the stack for a message before eliding: a path of PATH_MAX and
 * words, with no allocation (the failure may be out of memory).  A longer
 * one is formatted again into an allocation of its size. */
enum { FULL_MAX = 8 * CG_ERRMSG_MAX, TAIL_KEEP = CG_ERRMSG_MAX / 3 };

static bool utf8_continuation(char c)
{
    return ((unsigned char)c & 0xC0) == 0x80;
}

/* len, less the bytes of a character that the end of s[0..len) cuts. */
static size_t whole_characters(const char *s, size_t len)
{
    size_t start = len; /* of the last character */
    while (start > 0 && utf8_continuation(s[start - 1]))
        start--;
    if (start == 0)
        return len;
    unsigned char lead = (unsigned char)s[start - 1];
    size_t need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
    return len - (start - 1) < need ? start - 1 : len;
}

/* Copies the n-byte text into buf (CG_ERRMSG_MAX bytes): whole if it fits,
 * else its start, "...", and its last TAIL_KEEP or so bytes, the cut made
 * between characters.  A cause at the end of a message about a long path
 * ("cannot open '...': No such file or directory") survives. */
static void fit_message(char *buf, const char *text, size_t n)
{
    if (n < CG_ERRMSG_MAX) {
        memcpy(buf, text, n + 1);
        return;
    }
    size_t tail = n - TAIL_KEEP;
    while (tail < n && utf8_continuation(text[tail]))
        tail++;
    size_t head = CG_ERRMSG_MAX - 1 - 3 - (n - tail);
    while (head > 0 && utf8_continuation(text[head]))
        head--;
    memcpy(buf, text, head);
    memcpy(buf + head, "...", 3);
    memcpy(buf + head + 3, text + tail, n - tail + 1);
}

/* Records fmt's message followed by suffix (a nested call's message, or "")
 * in err (if not NULL) and the thread's buffer. */
static chargan_status record(cg_error *err, chargan_status status, const char *suffix,
                             const char *fmt, va_list ap)
{
    char full[FULL_MAX], buf[CG_ERRMSG_MAX], *text = full;
    size_t extra = strlen(suffix);
    va_list again;
    va_copy(again, ap);
    int n = vsnprintf(full, sizeof full, fmt, ap);
    size_t len = n < 0 ? 0 : (size_t)n;
    if (n < 0)
        full[0] = '\0';
    else if (len + extra >= sizeof full && (text = cg_malloc(len + extra + 1)) != NULL)
        vsnprintf(text, len + 1, fmt, again); /* all of it: the end is where the cause is */
    else if (len + extra >= sizeof full) { /* no memory for it: cut short, between characters */
        text = full;
        len = whole_characters(full, len < sizeof full - 1 - extra ? len : sizeof full - 1 - extra);
    }
    va_end(again);
    memcpy(text + len, suffix, extra + 1);
    fit_message(buf, text, len + extra);
    if (text != full)
        cg_free(text);
    memcpy(thread_msg, buf, sizeof buf);
    if (err)
        memcpy(err->msg, buf, sizeof buf);
    if (status != CHARGAN_E_IO) /* an I/O failure passed on keeps its errno */
        thread_errno = 0;
    return status;
}

chargan_status cg_vfail(cg_error *err, chargan_status status, const char *fmt, va_list ap)
{
    return record(err, status, "", fmt, ap);
}

chargan_status cg_fail_io(cg_error *err, int errnum, const char *fmt, ...)
{
    thread_errno = errnum;
    va_list ap;
    va_start(ap, fmt);
    cg_vfail(err, CHARGAN_E_IO, fmt, ap);
    va_end(ap);
    return CHARGAN_E_IO;
}

chargan_status cg_fail(cg_error *err, chargan_status status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    cg_vfail(err, status, fmt, ap);
    va_end(ap);
    return status;
}

chargan_status cg_fail_from(cg_error *err, chargan_status status, const char *fmt, ...)
{
    char inner[CG_ERRMSG_MAX]; /* the buffer the new message is written to */
    memcpy(inner, thread_msg, sizeof inner);
    va_list ap;
    va_start(ap, fmt);
    record(err, status, inner, fmt, ap);
    va_end(ap);
    return status;
}

/* A struct_size some version of the struct has: at least its first
 * published one's, and nothing that could only be garbage. */
static bool size_in_range(size_t size, size_t min_size)
{
    return size >= min_size && size <= CG_MAX_STRUCT_SIZE;
}

bool cg_struct_size_ok(const void *s, size_t given, size_t min_size, size_t our_size)
{
    if (!size_in_range(given, min_size))
        return false;
    const unsigned char *bytes = s;
    for (size_t i = our_size; i < given; i++)
        if (bytes[i] != 0)
            return false;
    return true;
}

chargan_status cg_check_struct_size(cg_error *err, const void *s, size_t min_size,
                                    size_t our_size, const char *fn, const char *what,
                                    const char *init)
{
    size_t given;
    memcpy(&given, s, sizeof given); /* struct_size is every such struct's first field */
    if (cg_struct_size_ok(s, given, min_size, our_size))
        return CHARGAN_OK;
    return cg_fail(err, CHARGAN_E_INVALID, "%s: %s->struct_size %zu, expected %zu (call %s; an "
                   "older struct has at least %zu bytes, a newer one at most %d with its unknown "
                   "tail zero)", fn, what, given, our_size, init, min_size, CG_MAX_STRUCT_SIZE);
}

chargan_status cg_get_struct(cg_error *err, void *dst, const void *ours, size_t our_size,
                             size_t min_size, const char *fn)
{
    size_t size;
    memcpy(&size, dst, sizeof size); /* struct_size is every such struct's first field */
    if (!size_in_range(size, min_size))
        return cg_fail(err, CHARGAN_E_INVALID, "%s: cfg->struct_size %zu, expected %zu to %d "
                       "(set it to sizeof the struct)", fn, size, min_size, CG_MAX_STRUCT_SIZE);
    memcpy(dst, ours, size < our_size ? size : our_size);
    memcpy(dst, &size, sizeof size);
    return CHARGAN_OK;
}

chargan_status cg_init_struct(void *dst, size_t dst_size, const void *defaults, size_t min_size,
                              size_t our_size, const char *fn)
{
    if (!dst || !size_in_range(dst_size, min_size))
        return cg_fail(NULL, CHARGAN_E_INVALID, "%s: %s (struct_size %zu, from %zu to %d)", fn,
                       !dst ? "NULL struct" : dst_size < min_size ? "struct too small"
                                                                  : "struct too large",
                       dst_size, min_size, CG_MAX_STRUCT_SIZE);
    /* A newer caller's extra fields are zeroed: zero means "nothing new asked". */
    memset(dst, 0, dst_size);
    memcpy(dst, defaults, dst_size < our_size ? dst_size : our_size);
    memcpy(dst, &dst_size, sizeof dst_size); /* struct_size is every such struct's first field */
    return CHARGAN_OK;
}

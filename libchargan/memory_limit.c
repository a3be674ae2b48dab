/* memory_limit.c - how much memory this process may use: the machine's
 * physical memory, or less where the process's control group (a container,
 * a systemd unit, a batch job) is limited to less.  Beyond that limit the
 * kernel kills the process instead of failing an allocation, so the trainer
 * checks its buffers against it when it reserves them.
 *
 * The control group is found the way the kernel describes it:
 * /proc/self/cgroup names the group of each hierarchy ("0::PATH" for the
 * unified cgroup v2 one, "N:...memory...:PATH" for a cgroup v1 memory
 * controller), /proc/self/mountinfo where each hierarchy is mounted and which
 * of its groups each mount shows as its root.  Version 2 limits the group and
 * every group above it (memory.max, "max" where unlimited): the smallest
 * counts.  Version 1 reports the limit with its ancestors' in memory.stat's
 * hierarchical_memory_limit, and its own in memory.limit_in_bytes.  Both are
 * read where both are mounted (hybrid systems).  Whatever cannot be read or
 * parsed counts as no limit: the check then falls back to physical memory. */
#define _POSIX_C_SOURCE 200809L
#include "internal.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static _Thread_local size_t memory_override;

/* ROOT (the tests' fake tree; "" for the real one) + path, or false if it
 * does not fit. */
static bool rooted(char *out, size_t size, const char *root, const char *path)
{
    const int n = snprintf(out, size, "%s%s", root, path);
    return n >= 0 && (size_t)n < size;
}

/* Calls visit on each line of FILE, its newline removed, until visit returns
 * false.  A failure to open it that a later try could avoid (out of
 * descriptors or memory) sets *transient, so that the result is not kept. */
static void each_line(const char *file, bool *transient, bool (*visit)(char *line, void *ctx),
                      void *ctx)
{
    FILE *f = fopen(file, "re");
    if (!f) {
        if (errno == EMFILE || errno == ENFILE || errno == ENOMEM || errno == EINTR ||
            errno == EAGAIN)
            *transient = true;
        return;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    while ((len = getline(&line, &cap, f)) > 0) {
        if (line[len - 1] == '\n')
            line[len - 1] = '\0';
        if (!visit(line, ctx))
            break;
    }
    free(line);
    fclose(f);
}

/* A decimal number of bytes, alone, at s: UINT64_MAX for anything else
 * ("max", a sign, a trailing word, a value out of range). */
static uint64_t parse_bytes(const char *s)
{
    if (s[0] < '0' || s[0] > '9')
        return UINT64_MAX;
    char *end;
    errno = 0;
    const uintmax_t v = strtoumax(s, &end, 10);
    if (errno != 0 || *end != '\0' || v > UINT64_MAX)
        return UINT64_MAX;
    return (uint64_t)v;
}

/* A limit file's value: its first line, or (key given: memory.stat) that of
 * its line "KEY value". */
typedef struct limit_read {
    const char *key;
    uint64_t value;
} limit_read;

static bool limit_line(char *line, void *ctx)
{
    limit_read *l = ctx;
    if (!l->key) {
        l->value = parse_bytes(line);
        return false;
    }
    const size_t n = strlen(l->key);
    if (strncmp(line, l->key, n) != 0 || line[n] != ' ')
        return true;
    l->value = parse_bytes(line + n + 1);
    return false;
}

/* DIR/NAME's value (see limit_read), UINT64_MAX where there is none. */
static uint64_t read_limit(const char *dir, const char *name, const char *key, bool *transient)
{
    char file[4200];
    limit_read l = {key, UINT64_MAX};
    if (snprintf(file, sizeof file, "%s/%s", dir, name) < (int)sizeof file)
        each_line(file, transient, limit_line, &l);
    return l.value;
}

static uint64_t min_u64(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

/* Whether the comma-separated LIST has the word WORD. */
static bool has_word(const char *list, const char *word)
{
    const size_t n = strlen(word);
    for (const char *p = list; *p;) {
        const char *comma = strchr(p, ',');
        const size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (len == n && strncmp(p, word, n) == 0)
            return true;
        if (!comma)
            break;
        p = comma + 1;
    }
    return false;
}

/* Whether a group path has a ".." component: a group outside the cgroup
 * namespace, which no mount of the namespace shows. */
static bool outside_namespace(const char *group)
{
    for (const char *p = strstr(group, "/.."); p; p = strstr(p + 1, "/.."))
        if (p[3] == '/' || p[3] == '\0')
            return true;
    return false;
}

/* mountinfo escapes space, tab, newline and backslash as \ooo: undone in place. */
static void unescape_octal(char *s)
{
    char *out = s;
    for (const char *p = s; *p;) {
        if (p[0] == '\\' && p[1] >= '0' && p[1] <= '3' && p[2] >= '0' && p[2] <= '7' &&
            p[3] >= '0' && p[3] <= '7') {
            *out++ = (char)((p[1] - '0') * 64 + (p[2] - '0') * 8 + (p[3] - '0'));
            p += 4;
        } else {
            *out++ = *p++;
        }
    }
    *out = '\0';
}

/* Whether GROUP is the group TOP or below it. */
static bool contains(const char *top, const char *group)
{
    const size_t n = strlen(top);
    return strcmp(top, "/") == 0 ||
           (strncmp(group, top, n) == 0 && (group[n] == '/' || group[n] == '\0'));
}

/* The process's group in one hierarchy (V2: the unified cgroup2 one; V1: a
 * cgroup v1 one with the memory controller) and the directory that shows it:
 * through the mount of the hierarchy whose root is the group or above it (a
 * mount of another subtree, or a namespace's view from outside it, does
 * not), with the shortest root, which shows the most groups above it.  top:
 * the length of the directory's part that is the mount's. */
enum { V2, V1 };
typedef struct hierarchy {
    const char *root;
    char group[4096]; /* "" where the process has none */
    char dir[4096];
    size_t top, shown_from; /* shown_from: the mount root's length; SIZE_MAX none yet */
} hierarchy;

/* A line of /proc/self/cgroup: "0::PATH" (v2) or "ID:CONTROLLERS:PATH". */
static bool group_line(char *line, void *ctx)
{
    hierarchy *h = ctx;
    char *first = strchr(line, ':'), *second = first ? strchr(first + 1, ':') : NULL;
    if (!second || second[1] != '/' || strlen(second + 1) >= sizeof h->group ||
        outside_namespace(second + 1))
        return true;
    *first = *second = '\0';
    if (strcmp(line, "0") == 0 && first[1] == '\0')
        strcpy(h[V2].group, second + 1);
    else if (has_word(first + 1, "memory"))
        strcpy(h[V1].group, second + 1);
    return true;
}

/* A line of /proc/self/mountinfo:
 * ID PARENT MAJ:MIN ROOT MOUNT OPTIONS [OPTIONAL...] - TYPE SOURCE SUPER */
static bool mount_line(char *line, void *ctx)
{
    hierarchy *h = ctx;
    char *fields[5], *save = NULL, *tok = strtok_r(line, " ", &save);
    int n = 0;
    for (; tok && n < 5; tok = strtok_r(NULL, " ", &save))
        fields[n++] = tok;
    while (tok && strcmp(tok, "-") != 0)
        tok = strtok_r(NULL, " ", &save);
    const char *type = tok ? strtok_r(NULL, " ", &save) : NULL;
    const char *source = type ? strtok_r(NULL, " ", &save) : NULL;
    const char *super = source ? strtok_r(NULL, " ", &save) : NULL;
    if (n < 5 || !super)
        return true;
    hierarchy *x = strcmp(type, "cgroup2") == 0                                     ? &h[V2]
                   : strcmp(type, "cgroup") == 0 && has_word(super, "memory") ? &h[V1]
                                                                               : NULL;
    char *top = fields[3], *mount = fields[4];
    unescape_octal(top);
    unescape_octal(mount);
    const size_t from = strcmp(top, "/") == 0 ? 0 : strlen(top);
    if (!x || !x->group[0] || !contains(top, x->group) || from >= x->shown_from)
        return true;
    const char *below = x->group + from;
    const int w = snprintf(x->dir, sizeof x->dir, "%s%s%s", x->root, mount,
                           strcmp(below, "/") == 0 ? "" : below);
    if (w >= 0 && (size_t)w < sizeof x->dir) {
        x->top = strlen(x->root) + strlen(mount);
        x->shown_from = from;
    }
    return true;
}

/* v2: the smallest memory.max of the group and the groups above it, up to
 * the mount's root group (the hierarchy's root has none; a namespace's or a
 * subtree mount's root is a group that can have one). */
static uint64_t v2_limit(hierarchy *h, bool *transient)
{
    uint64_t limit = UINT64_MAX;
    for (char *dir = h->dir;;) {
        limit = min_u64(limit, read_limit(dir, "memory.max", NULL, transient));
        char *slash = strrchr(dir, '/');
        if (!slash || (size_t)(slash - dir) < h->top)
            break;
        *slash = '\0';
    }
    return limit;
}

/* v1: the limit with its ancestors', else the group's own. */
static uint64_t v1_limit(const hierarchy *h, bool *transient)
{
    const uint64_t hierarchical =
        read_limit(h->dir, "memory.stat", "hierarchical_memory_limit", transient);
    return hierarchical != UINT64_MAX ? hierarchical
                                      : read_limit(h->dir, "memory.limit_in_bytes", NULL, transient);
}

uint64_t cg_cgroup_memory_limit(const char *root, bool *transient)
{
    *transient = false;
    hierarchy h[2] = {{.root = root, .shown_from = SIZE_MAX}, {.root = root, .shown_from = SIZE_MAX}};
    char file[4200];
    if (rooted(file, sizeof file, root, "/proc/self/cgroup"))
        each_line(file, transient, group_line, h);
    if ((h[V2].group[0] || h[V1].group[0]) &&
        rooted(file, sizeof file, root, "/proc/self/mountinfo"))
        each_line(file, transient, mount_line, h);
    uint64_t limit = UINT64_MAX;
    if (h[V2].shown_from != SIZE_MAX)
        limit = v2_limit(&h[V2], transient);
    if (h[V1].shown_from != SIZE_MAX)
        limit = min_u64(limit, v1_limit(&h[V1], transient));
    return limit;
}

static size_t physical_memory(void)
{
    const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    if (pages <= 0 || page <= 0 || (unsigned long)pages > SIZE_MAX / (unsigned long)page)
        return SIZE_MAX;
    return (size_t)pages * (size_t)page;
}

/* Measured once per process (the files cost about 130 us a time, and every
 * load of a file asks; a group's limit rarely changes under a running
 * process), unless a read failed in a way a later try could avoid (out of
 * descriptors): then that call goes by physical memory, and the next one
 * measures again. */
static pthread_mutex_t limit_lock = PTHREAD_MUTEX_INITIALIZER;
static bool limit_measured;
static size_t process_limit;
static bool process_limit_by_cgroup;
static char measured_root[4096]; /* "": the real files; a fake tree in the tests */

size_t cg_memory_limit(bool *by_cgroup)
{
    *by_cgroup = false;
    if (memory_override)
        return memory_override;
    pthread_mutex_lock(&limit_lock);
    if (!limit_measured) {
        const size_t physical = physical_memory();
        bool transient;
        const uint64_t group = cg_cgroup_memory_limit(measured_root, &transient);
        process_limit_by_cgroup = group < (uint64_t)physical;
        process_limit = process_limit_by_cgroup ? (size_t)group : physical;
        limit_measured = !transient;
    }
    *by_cgroup = process_limit_by_cgroup;
    const size_t limit = process_limit;
    pthread_mutex_unlock(&limit_lock);
    return limit;
}

chargan_status cg_check_memory(cg_error *err, uint64_t bytes, const char *fmt, ...)
{
    bool by_cgroup;
    const size_t limit = cg_memory_limit(&by_cgroup);
    if (bytes <= limit)
        return CHARGAN_OK;
    char what[CG_ERRMSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return cg_fail(err, CHARGAN_E_NOMEM, "%s %.3g GB, more than %s (%.3g GB)", what,
                   (double)bytes / 1e9,
                   by_cgroup ? "this process's control group may use" : "this machine's memory",
                   (double)limit / 1e9);
}

void cg_set_memory_limit(size_t bytes)
{
    memory_override = bytes;
}

void cg_set_memory_limit_root(const char *root)
{
    pthread_mutex_lock(&limit_lock);
    snprintf(measured_root, sizeof measured_root, "%s", root);
    limit_measured = false;
    pthread_mutex_unlock(&limit_lock);
}

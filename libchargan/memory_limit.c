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

/* fopen for reading; a failure that a later try could avoid (out of
 * descriptors or memory) sets *transient, so that the result is not kept. */
static FILE *open_read(const char *file, bool *transient)
{
    FILE *f = fopen(file, "re");
    if (!f && (errno == EMFILE || errno == ENFILE || errno == ENOMEM || errno == EINTR ||
               errno == EAGAIN))
        *transient = true;
    return f;
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
    if (errno != 0 || (*end != '\n' && *end != '\0') || v > UINT64_MAX)
        return UINT64_MAX;
    return (uint64_t)v;
}

/* The value on the first line of FILE, or of its line "KEY value" where key
 * is given (memory.stat); UINT64_MAX where there is none. */
static uint64_t read_limit_file(const char *file, const char *key, bool *transient)
{
    FILE *f = open_read(file, transient);
    if (!f)
        return UINT64_MAX;
    char *line = NULL;
    size_t cap = 0;
    uint64_t limit = UINT64_MAX;
    const size_t key_len = key ? strlen(key) : 0;
    while (getline(&line, &cap, f) > 0) {
        if (!key) {
            limit = parse_bytes(line);
            break;
        }
        if (strncmp(line, key, key_len) == 0 && line[key_len] == ' ') {
            limit = parse_bytes(line + key_len + 1);
            break;
        }
    }
    free(line);
    fclose(f);
    return limit;
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

/* The group paths of /proc/self/cgroup: v2's "0::PATH" and v1's memory
 * controller's.  Empty strings where absent. */
static void read_groups(const char *root, char *v2, char *v1, size_t size, bool *transient)
{
    v2[0] = v1[0] = '\0';
    char file[4096];
    if (!rooted(file, sizeof file, root, "/proc/self/cgroup"))
        return;
    FILE *f = open_read(file, transient);
    if (!f)
        return;
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    while ((len = getline(&line, &cap, f)) > 0) {
        if (line[len - 1] == '\n')
            line[--len] = '\0';
        char *first = strchr(line, ':'), *second = first ? strchr(first + 1, ':') : NULL;
        if (!second || second[1] != '/' || strlen(second + 1) >= size)
            continue;
        *first = *second = '\0';
        if (outside_namespace(second + 1))
            continue;
        if (strcmp(line, "0") == 0 && first[1] == '\0')
            strcpy(v2, second + 1);
        else if (has_word(first + 1, "memory"))
            strcpy(v1, second + 1);
    }
    free(line);
    fclose(f);
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

/* The directory of GROUP, and in *top_len the length of its mount's part:
 * through the mount of its hierarchy (v2: cgroup2; v1: cgroup with the
 * memory controller) that shows it, i.e. whose root is the group or above it
 * (a mount of another subtree, or a namespace's view from outside it, does
 * not), with the shortest root, which shows the most groups above it.
 * False if there is none. */
static bool group_dir(const char *root, bool v2, const char *group, char *dir, size_t size,
                      size_t *top_len, bool *transient)
{
    char file[4096];
    if (!rooted(file, sizeof file, root, "/proc/self/mountinfo"))
        return false;
    FILE *f = open_read(file, transient);
    if (!f)
        return false;
    char *line = NULL;
    size_t cap = 0, best = SIZE_MAX;
    while (getline(&line, &cap, f) > 0) {
        /* ID PARENT MAJ:MIN ROOT MOUNT OPTIONS [OPTIONAL...] - TYPE SOURCE SUPER */
        char *fields[5], *save = NULL, *tok = strtok_r(line, " \n", &save);
        int n = 0;
        for (; tok && n < 5; tok = strtok_r(NULL, " \n", &save))
            fields[n++] = tok;
        while (tok && strcmp(tok, "-") != 0)
            tok = strtok_r(NULL, " \n", &save);
        const char *type = tok ? strtok_r(NULL, " \n", &save) : NULL;
        const char *source = type ? strtok_r(NULL, " \n", &save) : NULL;
        const char *super = source ? strtok_r(NULL, " \n", &save) : NULL;
        if (n < 5 || !super)
            continue;
        const bool wanted = v2 ? strcmp(type, "cgroup2") == 0
                               : strcmp(type, "cgroup") == 0 && has_word(super, "memory");
        char *top = fields[3], *mount = fields[4];
        unescape_octal(top);
        unescape_octal(mount);
        const size_t top_root = strcmp(top, "/") == 0 ? 0 : strlen(top);
        if (!wanted || !contains(top, group) || top_root >= best)
            continue;
        const char *below = group + top_root;
        const int w = snprintf(dir, size, "%s%s%s", root, mount, strcmp(below, "/") == 0 ? "" : below);
        if (w >= 0 && (size_t)w < size) {
            *top_len = strlen(root) + strlen(mount);
            best = top_root;
        }
    }
    free(line);
    fclose(f);
    return best != SIZE_MAX;
}

/* v2: the smallest memory.max of the group and the groups above it, up to
 * the mount's root group (the hierarchy's root has none; a namespace's or a
 * subtree mount's root is a group that can have one). */
static uint64_t v2_limit(const char *root, const char *group, bool *transient)
{
    char dir[8192], file[8300];
    size_t top;
    if (!group[0] || !group_dir(root, true, group, dir, sizeof dir, &top, transient))
        return UINT64_MAX;
    uint64_t limit = UINT64_MAX;
    for (;;) {
        snprintf(file, sizeof file, "%s/memory.max", dir);
        limit = min_u64(limit, read_limit_file(file, NULL, transient));
        char *slash = strrchr(dir, '/');
        if (!slash || (size_t)(slash - dir) < top)
            break;
        *slash = '\0';
    }
    return limit;
}

/* v1: the limit with its ancestors', else the group's own. */
static uint64_t v1_limit(const char *root, const char *group, bool *transient)
{
    char dir[8192], file[8300];
    size_t top;
    if (!group[0] || !group_dir(root, false, group, dir, sizeof dir, &top, transient))
        return UINT64_MAX;
    snprintf(file, sizeof file, "%s/memory.stat", dir);
    const uint64_t hierarchical = read_limit_file(file, "hierarchical_memory_limit", transient);
    if (hierarchical != UINT64_MAX)
        return hierarchical;
    snprintf(file, sizeof file, "%s/memory.limit_in_bytes", dir);
    return read_limit_file(file, NULL, transient);
}

static uint64_t cgroup_limit(const char *root, bool *transient)
{
    char v2[4096], v1[4096];
    read_groups(root, v2, v1, sizeof v2, transient);
    return min_u64(v2_limit(root, v2, transient), v1_limit(root, v1, transient));
}

uint64_t cg_cgroup_memory_limit(const char *root, bool *transient)
{
    *transient = false;
    return cgroup_limit(root, transient);
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

const char *cg_memory_limit_name(bool by_cgroup)
{
    return by_cgroup ? "this process's control group may use" : "this machine's memory";
}

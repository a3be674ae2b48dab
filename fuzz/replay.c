/* replay.c - main() for a fuzz target without libFuzzer: runs the target on
 * every file named on the command line (directories: every file in them,
 * sorted) and reports each as a TAP case.  A crash or a broken invariant
 * aborts the process, so the cases it planned but never reported count as
 * failed.  This is how the seed corpora and the committed crash inputs
 * (fuzz/regressions/) are replayed by every build's tests, gcc included. */
#define _POSIX_C_SOURCE 200809L
#include "fuzz_common.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct path_list {
    char **items;
    size_t n, cap;
} path_list;

static void add(path_list *l, const char *path)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 64;
        l->items = realloc(l->items, l->cap * sizeof *l->items);
        if (!l->items) {
            perror("replay");
            exit(1);
        }
    }
    l->items[l->n] = strdup(path);
    if (!l->items[l->n]) {
        perror("replay");
        exit(1);
    }
    l->n++;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void collect(path_list *l, const char *path)
{
    struct stat sb;
    if (stat(path, &sb) != 0) {
        fprintf(stderr, "replay: cannot stat %s\n", path);
        exit(1);
    }
    if (!S_ISDIR(sb.st_mode)) {
        add(l, path);
        return;
    }
    DIR *d = opendir(path);
    if (!d) {
        fprintf(stderr, "replay: cannot open %s\n", path);
        exit(1);
    }
    size_t first = l->n;
    struct dirent *e;
    char buf[4096];
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue; /* ., .., and .gitignore-like files */
        snprintf(buf, sizeof buf, "%s/%s", path, e->d_name);
        if (stat(buf, &sb) == 0 && S_ISREG(sb.st_mode))
            add(l, buf);
    }
    closedir(d);
    qsort(l->items + first, l->n - first, sizeof *l->items, by_name);
}

static unsigned char *read_all(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0, got;
    unsigned char *buf = malloc(cap);
    while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) {
            unsigned char *bigger = realloc(buf, cap *= 2);
            if (!bigger)
                free(buf);
            buf = bigger;
        }
    }
    fclose(f);
    *size = n;
    return buf;
}

int main(int argc, char **argv)
{
    path_list l = {0};
    for (int i = 1; i < argc; i++)
        collect(&l, argv[i]);
    printf("1..%zu\n", l.n);
    fflush(stdout);
    int failed = 0;
    for (size_t i = 0; i < l.n; i++) {
        size_t size = 0;
        unsigned char *data = read_all(l.items[i], &size);
        if (!data) {
            printf("not ok %zu - %s (cannot read)\n", i + 1, l.items[i]);
            failed = 1;
            free(l.items[i]);
            continue;
        }
        /* Exactly the input's bytes, as libFuzzer passes them: an
         * over-read by one byte is then caught by ASan here too. */
        unsigned char *exact = malloc(size ? size : 1);
        if (!exact) {
            perror("replay");
            return 1;
        }
        memcpy(exact, data, size);
        free(data);
        LLVMFuzzerTestOneInput(exact, size);
        free(exact);
        printf("ok %zu - %s\n", i + 1, l.items[i]);
        fflush(stdout);
        free(l.items[i]);
    }
    free(l.items);
    return failed;
}

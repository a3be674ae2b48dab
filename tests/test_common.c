/* test_common.c - helpers shared by the Check suites. */
#define _POSIX_C_SOURCE 200809L
#include "test_common.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int cg_test_run(Suite *suite)
{
    SRunner *sr = srunner_create(suite);
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

static char tmpdir[256];
static pid_t tmpdir_owner;

/* Removes path and, if it is a directory, what it holds (not following
 * symbolic links); depth bounds the recursion. */
static void remove_tree(const char *path, int depth)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return;
    if (S_ISDIR(st.st_mode) && depth > 0) {
        DIR *d = opendir(path);
        if (d) {
            struct dirent *e;
            while ((e = readdir(d)) != NULL) {
                if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
                    continue;
                /* sized to fit: test_core makes names of over 1,000 bytes */
                size_t size = strlen(path) + 1 + strlen(e->d_name) + 1;
                char *child = malloc(size);
                if (child) {
                    snprintf(child, size, "%s/%s", path, e->d_name);
                    remove_tree(child, depth - 1);
                    free(child);
                }
            }
            closedir(d);
        }
    }
    remove(path);
}

/* At exit of the process that made it (Check forks a process per test case,
 * and each makes its own): the directory and whatever a test left in it. */
static void remove_tmpdir(void)
{
    if (getpid() == tmpdir_owner)
        remove_tree(tmpdir, 8);
}

const char *cg_test_tmpdir(void)
{
    if (!tmpdir[0]) {
        const char *base = getenv("TMPDIR");
        snprintf(tmpdir, sizeof tmpdir, "%s/chargan-test-XXXXXX", base ? base : "/tmp");
        if (!mkdtemp(tmpdir)) {
            perror("mkdtemp");
            exit(2);
        }
        tmpdir_owner = getpid();
        atexit(remove_tmpdir);
    }
    return tmpdir;
}

char *cg_test_read_file(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    ck_assert_ptr_nonnull(buf);
    ck_assert_uint_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = 0;
    fclose(f);
    if (size)
        *size = (size_t)n;
    return buf;
}

const char *cg_test_corpus_path(const char *name)
{
    static char path[1024];
    const char *dir = getenv("CHARGAN_CORPUS_DIR");
    snprintf(path, sizeof path, "%s/%s", dir ? dir : "data", name);
    return path;
}

/* test_common.h - helpers shared by the Check suites. */
#ifndef CHARGAN_TEST_COMMON_H
#define CHARGAN_TEST_COMMON_H

#include <check.h>
#include <stddef.h>
#include <stdint.h>

#include "chargan.h"

/* Runs the suite built by make_suite and returns the process exit status. */
int cg_test_run(Suite *suite);
/* A path inside a fresh temporary directory (removed at exit by the OS's tmp
 * cleaning only; tests unlink what they create). */
const char *cg_test_tmpdir(void);
/* Reads a whole file into a malloc'd, NUL-terminated buffer; aborts the test on failure. */
char *cg_test_read_file(const char *path, size_t *size);
/* $CHARGAN_CORPUS_DIR/name (the repository's data/ folder). */
const char *cg_test_corpus_path(const char *name);

#define CG_TEST_MAIN(make_suite)                                                                   \
    int main(void) { return cg_test_run(make_suite()); }

#endif

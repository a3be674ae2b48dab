/* checkpoint.h - the checkpoint container: a header, then tagged sections
 * each with its length and CRC-32 (format in docs/FORMATS.md).  Models,
 * tokenizer, optimizers and trainer state each write their own section. */
#ifndef CHARGAN_CHECKPOINT_H
#define CHARGAN_CHECKPOINT_H

#include "internal.h"

#define CG_CKPT_VERSION 1u
#define CG_CKPT_MAX_SECTIONS 32
/* 16 GiB, or all a 32-bit address space can hold */
#define CG_CKPT_MAX_FILE                                                                           \
    ((uint64_t)SIZE_MAX < (uint64_t)1 << 34 ? SIZE_MAX : (size_t)((uint64_t)1 << 34))

#define CG_TAG(a, b, c, d) ((uint32_t)(a) | (uint32_t)(b) << 8 | (uint32_t)(c) << 16 | (uint32_t)(d) << 24)
#define CG_SEC_TOKENIZER CG_TAG('T', 'O', 'K', 'N')
#define CG_SEC_GENERATOR CG_TAG('G', 'M', 'O', 'D')
#define CG_SEC_DISCRIMINATOR CG_TAG('D', 'M', 'O', 'D')
#define CG_SEC_GEN_OPTIMIZER CG_TAG('G', 'O', 'P', 'T')
#define CG_SEC_DISC_OPTIMIZER CG_TAG('D', 'O', 'P', 'T')
#define CG_SEC_TRAINER CG_TAG('T', 'R', 'N', 'R')

/* A tag as text for messages: its four bytes in file order if printable,
 * else hex.  buf holds the text. */
const char *cg_ckpt_tag_text(uint32_t tag, char buf[12]);

typedef struct cg_ckpt_writer {
    cg_writer w;
    uint32_t n_sections;
    size_t section_start; /* offset of the open section's payload */
} cg_ckpt_writer;

void cg_ckpt_begin(cg_ckpt_writer *cw);
/* Opens a section; write its payload into cw->w, then close it. */
void cg_ckpt_section_begin(cg_ckpt_writer *cw, uint32_t tag);
void cg_ckpt_section_end(cg_ckpt_writer *cw);
/* Patches the header and writes the file atomically; frees the buffer. */
chargan_status cg_ckpt_finish(cg_ckpt_writer *cw, cg_error *err, const char *path);

typedef struct cg_ckpt_section {
    uint32_t tag;
    const uint8_t *payload;
    size_t length;
    size_t file_offset; /* of the payload, for messages */
} cg_ckpt_section;

typedef struct cg_ckpt_file {
    uint8_t *data;
    size_t size;
    uint32_t n_sections;
    cg_ckpt_section sections[CG_CKPT_MAX_SECTIONS];
} cg_ckpt_file;

/* Reads and validates a checkpoint's container (header, every section's
 * bounds and checksum) from a file or a buffer (the buffer is borrowed). */
chargan_status cg_ckpt_open(cg_error *err, const char *path, cg_ckpt_file *f);
chargan_status cg_ckpt_parse(cg_error *err, const char *what, const void *data, size_t size,
                             cg_ckpt_file *f);
/* The section with this tag, or NULL. */
const cg_ckpt_section *cg_ckpt_find(const cg_ckpt_file *f, uint32_t tag);
void cg_ckpt_close(cg_ckpt_file *f);

/* The generator or discriminator of an opened checkpoint, with the
 * tokenizer attached if the file has one.  path is for messages. */
chargan_status cg_ckpt_read_model(cg_error *err, const cg_ckpt_file *f, const char *path,
                                  chargan_model_kind kind, chargan_model **out);

#endif

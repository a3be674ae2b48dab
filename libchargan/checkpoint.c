/* checkpoint.c - the checkpoint container, the model section, and saving
 * and loading a model on its own.  Every length read from a file is checked
 * against the bytes that remain before anything is allocated. */
#include "checkpoint.h"
#include "model.h"
#include "tokenizer.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static const uint8_t ckpt_magic[8] = {'C', 'H', 'A', 'R', 'G', 'A', 'N', 0};
#define BYTE_ORDER_MARK 0x01020304u
#define HEADER_SIZE 24 /* magic 8, version 4, byte order 4, sections 4, header CRC 4 */
#define SECTION_HEADER_SIZE 16 /* tag 4, flags 4, length 8 */

/* The sections this library writes; any other tag is refused. */
static bool known_tag(uint32_t tag)
{
    return tag == CG_SEC_TOKENIZER || tag == CG_SEC_GENERATOR || tag == CG_SEC_DISCRIMINATOR ||
           tag == CG_SEC_GEN_OPTIMIZER || tag == CG_SEC_DISC_OPTIMIZER || tag == CG_SEC_TRAINER;
}

const char *cg_ckpt_tag_text(uint32_t tag, char buf[12])
{
    bool printable = true;
    for (int i = 0; i < 4; i++) {
        unsigned c = (tag >> (8 * i)) & 0xFF;
        printable = printable && c >= 0x20 && c < 0x7F;
        buf[i] = (char)c;
    }
    if (printable)
        buf[4] = 0;
    else
        snprintf(buf, 12, "0x%08x", tag);
    return buf;
}

void cg_ckpt_begin(cg_ckpt_writer *cw)
{
    cg_writer_init(&cw->w);
    cw->n_sections = 0;
    cg_put_bytes(&cw->w, ckpt_magic, sizeof ckpt_magic);
    cg_put_u32(&cw->w, CG_CKPT_VERSION);
    cg_put_u32(&cw->w, BYTE_ORDER_MARK);
    cg_put_u32(&cw->w, 0); /* section count, patched by finish */
    cg_put_u32(&cw->w, 0); /* header CRC, patched by finish */
}

void cg_ckpt_section_begin(cg_ckpt_writer *cw, uint32_t tag)
{
    cg_put_u32(&cw->w, tag);
    cg_put_u32(&cw->w, 0); /* flags, reserved */
    cg_put_u64(&cw->w, 0); /* length, patched by section_end */
    cw->section_start = cw->w.size;
}

void cg_ckpt_section_end(cg_ckpt_writer *cw)
{
    if (cw->w.failed)
        return;
    size_t len = cw->w.size - cw->section_start;
    cg_patch_u64(&cw->w, cw->section_start - 8, (uint64_t)len);
    /* the CRC covers the section's header (tag, flags, length) and payload */
    size_t head = cw->section_start - SECTION_HEADER_SIZE;
    cg_put_u32(&cw->w, cg_crc32(0, cw->w.data + head, SECTION_HEADER_SIZE + len));
    cw->n_sections++;
}

chargan_status cg_ckpt_finish(cg_ckpt_writer *cw, cg_error *err, const char *path)
{
    chargan_status st;
    if (cw->w.failed) {
        st = cg_fail(err, CHARGAN_E_NOMEM, "out of memory serialising '%s'", path);
    } else {
        cg_patch_u32(&cw->w, 16, cw->n_sections);
        cg_patch_u32(&cw->w, 20, cg_crc32(0, cw->w.data, 20));
        st = cg_write_file_atomic(err, path, cw->w.data, cw->w.size);
    }
    cg_writer_free(&cw->w);
    return st;
}

/* The 24-byte header: magic, version, byte-order mark, section count and
 * the header's checksum; *n the section count. */
static chargan_status parse_header(cg_error *err, const char *what, cg_reader *r, uint32_t *n)
{
    const uint8_t *data = r->data;
    const size_t size = r->size;
    uint8_t magic[8];
    uint32_t version, bom, crc;
    if (!cg_get_bytes(r, magic, 8) || memcmp(magic, ckpt_magic, 8) != 0)
        return cg_fail(err, CHARGAN_E_FORMAT, "%s: not a libchargan checkpoint (bad magic at "
                       "offset 0)", what);
    /* The version first: a newer version may lay out everything after it
     * differently, so nothing else is judged before it (docs/FORMATS.md). */
    if (!cg_get_u32(r, &version))
        return cg_fail(err, CHARGAN_E_FORMAT, "%s: truncated header (%zu bytes, %d needed)", what,
                       size, HEADER_SIZE);
    if (version == 0)
        return cg_fail(err, CHARGAN_E_FORMAT, "%s: format version 0 at offset 8 does not exist",
                       what);
    if (version != CG_CKPT_VERSION)
        return cg_fail(err, CHARGAN_E_UNSUPPORTED, "%s: format version %u, this library reads %u",
                       what, version, CG_CKPT_VERSION);
    if (!cg_get_u32(r, &bom) || !cg_get_u32(r, n) || !cg_get_u32(r, &crc))
        return cg_fail(err, CHARGAN_E_FORMAT, "%s: truncated header (%zu bytes, %d needed)", what,
                       size, HEADER_SIZE);
    if (crc != cg_crc32(0, data, 20))
        return cg_fail(err, CHARGAN_E_FORMAT, "%s: header checksum mismatch at offset 20", what);
    if (bom != BYTE_ORDER_MARK)
        return cg_fail(err, CHARGAN_E_FORMAT, "%s: byte-order mark 0x%08x at offset 12, expected "
                       "0x%08x", what, bom, BYTE_ORDER_MARK);
    if (*n > CG_CKPT_MAX_SECTIONS)
        return cg_fail(err, CHARGAN_E_FORMAT, "%s: %u sections at offset 16, at most %d allowed",
                       what, *n, CG_CKPT_MAX_SECTIONS);
    return CHARGAN_OK;
}

chargan_status cg_ckpt_parse(cg_error *err, const char *what, const void *data, size_t size,
                             cg_ckpt_file *f)
{
    cg_reader r;
    cg_reader_init(&r, data, size);
    uint32_t n;
    chargan_status st = parse_header(err, what, &r, &n);
    if (st != CHARGAN_OK)
        return st;
    f->n_sections = n;
    for (uint32_t i = 0; i < n; i++) {
        size_t at = r.pos;
        uint32_t tag, flags;
        uint64_t len;
        uint32_t crc;
        if (!cg_get_u32(&r, &tag) || !cg_get_u32(&r, &flags) || !cg_get_u64(&r, &len))
            return cg_fail(err, CHARGAN_E_FORMAT, "%s: truncated header of section %u at offset "
                           "%zu", what, i, at);
        if (len > cg_reader_left(&r) || cg_reader_left(&r) - len < 4)
            return cg_fail(err, CHARGAN_E_FORMAT, "%s: section %u at offset %zu claims %llu bytes, "
                           "%zu remain", what, i, at, (unsigned long long)len, cg_reader_left(&r));
        cg_ckpt_section *s = &f->sections[i];
        s->tag = tag;
        s->file_offset = r.pos;
        s->length = (size_t)len;
        cg_get_view(&r, &s->payload, s->length);
        cg_get_u32(&r, &crc);
        char tb[12];
        if (crc != cg_crc32(0, s->payload - SECTION_HEADER_SIZE, SECTION_HEADER_SIZE + s->length))
            return cg_fail(err, CHARGAN_E_FORMAT, "%s: checksum mismatch in section %u ('%s') at "
                           "offset %zu", what, i, cg_ckpt_tag_text(tag, tb), at);
        /* a valid checksum, so these are what the writer meant: a newer one */
        if (flags != 0)
            return cg_fail(err, CHARGAN_E_UNSUPPORTED, "%s: section %u at offset %zu has flags "
                           "0x%x this library does not know", what, i, at, flags);
        if (!known_tag(tag))
            return cg_fail(err, CHARGAN_E_UNSUPPORTED, "%s: section %u at offset %zu has tag '%s', "
                           "which this library does not know", what, i, at,
                           cg_ckpt_tag_text(tag, tb));
        for (uint32_t j = 0; j < i; j++)
            if (f->sections[j].tag == tag)
                return cg_fail(err, CHARGAN_E_FORMAT, "%s: section '%s' repeated at offset %zu",
                               what, cg_ckpt_tag_text(tag, tb), at);
    }
    if (cg_reader_left(&r) != 0)
        return cg_fail(err, CHARGAN_E_FORMAT, "%s: %zu unexpected bytes after the last section at "
                       "offset %zu", what, cg_reader_left(&r), r.pos);
    return CHARGAN_OK;
}

/* cg_read_file's check of a checkpoint's first bytes: a whole header that
 * is wrong fails as the parser would fail it, before the rest of the file is
 * read (a shorter file is read whole: it is small). */
_Static_assert(CG_FILE_HEAD == HEADER_SIZE, "cg_read_file's head is the checkpoint's header");
static chargan_status check_header(cg_error *err, const char *path, const uint8_t *head, size_t n)
{
    if (n < HEADER_SIZE)
        return CHARGAN_OK;
    cg_reader r;
    cg_reader_init(&r, head, n);
    uint32_t sections;
    return parse_header(err, path, &r, &sections);
}

chargan_status cg_ckpt_open(cg_error *err, const char *path, cg_ckpt_file *f)
{
    memset(f, 0, sizeof *f);
    chargan_status st = cg_read_file(err, path, CG_CKPT_MAX_FILE, check_header, &f->data, &f->size);
    if (st != CHARGAN_OK)
        return st;
    st = cg_ckpt_parse(err, path, f->data, f->size, f);
    if (st != CHARGAN_OK)
        cg_ckpt_close(f);
    return st;
}

const cg_ckpt_section *cg_ckpt_find(const cg_ckpt_file *f, uint32_t tag)
{
    for (uint32_t i = 0; i < f->n_sections; i++)
        if (f->sections[i].tag == tag)
            return &f->sections[i];
    return NULL;
}

void cg_ckpt_close(cg_ckpt_file *f)
{
    cg_free(f->data);
    memset(f, 0, sizeof *f);
}

/* ------------------------------------------------------------------ the model section */

void cg_model_write(const chargan_model *m, cg_writer *w)
{
    const chargan_model_config *c = &m->cfg;
    cg_put_u32(w, (uint32_t)c->kind);
    cg_put_u32(w, c->vocab_size);
    cg_put_u32(w, c->embed_dim);
    cg_put_u32(w, c->hidden_dim);
    cg_put_u32(w, c->num_layers);
    cg_put_u32(w, c->noise_dim);
    cg_put_u32(w, (uint32_t)c->start_id);
    cg_put_f32(w, c->forget_bias);
    cg_put_f32(w, c->recurrent_dropout);
    cg_put_f32(w, c->init_scale);
    cg_put_u64(w, c->seed);
    for (int i = 0; i < 4; i++)
        cg_put_u64(w, m->rng.s[i]);
    cg_put_u32(w, (uint32_t)m->n_tensors);
    for (size_t i = 0; i < m->n_tensors; i++) {
        const cg_tensor *t = &m->tensors[i];
        uint32_t len = (uint32_t)strlen(t->name);
        cg_put_u32(w, len);
        cg_put_bytes(w, t->name, len);
        cg_put_u32(w, t->rank);
        cg_put_u64(w, t->shape[0]);
        cg_put_u64(w, t->shape[1]);
        cg_put_f32_array(w, m->params + t->offset, t->numel);
    }
}

#define TRUNCATED(field)                                                                            \
    cg_fail(err, CHARGAN_E_FORMAT, "model section truncated reading %s at offset %zu", field, r->pos)

chargan_status cg_model_read(cg_reader *r, cg_error *err, chargan_model **out)
{
    chargan_model_config c;
    chargan_model_config_init(&c, CHARGAN_GENERATOR);
    uint32_t kind, start;
    if (!cg_get_u32(r, &kind) || !cg_get_u32(r, &c.vocab_size) || !cg_get_u32(r, &c.embed_dim) ||
        !cg_get_u32(r, &c.hidden_dim) || !cg_get_u32(r, &c.num_layers) ||
        !cg_get_u32(r, &c.noise_dim) || !cg_get_u32(r, &start) ||
        !cg_get_f32(r, &c.forget_bias) || !cg_get_f32(r, &c.recurrent_dropout) ||
        !cg_get_f32(r, &c.init_scale) || !cg_get_u64(r, &c.seed))
        return TRUNCATED("the configuration");
    c.kind = (int32_t)kind;
    c.start_id = (int32_t)start;
    chargan_status st = cg_model_config_check(err, &c);
    if (st != CHARGAN_OK)
        return cg_fail_from(err, CHARGAN_E_FORMAT, "model section: ");
    cg_rng rng;
    for (int i = 0; i < 4; i++)
        if (!cg_get_u64(r, &rng.s[i]))
            return TRUNCATED("the RNG state");
    if (!cg_rng_state_valid(&rng))
        return cg_fail(err, CHARGAN_E_FORMAT, "model section: the RNG state at offset %zu is all "
                       "zero, which no generator reaches", r->pos - 32);
    uint32_t n_tensors;
    if (!cg_get_u32(r, &n_tensors))
        return TRUNCATED("the tensor count");
    /* Before allocating: the parameters the configuration implies must fit
     * in what is left of the section. */
    double weights = cg_model_config_weights(&c);
    if (weights * 4.0 > (double)cg_reader_left(r))
        return cg_fail(err, CHARGAN_E_FORMAT, "model section: the configuration implies %.0f "
                       "weights, only %zu bytes remain at offset %zu", weights, cg_reader_left(r),
                       r->pos);
    chargan_model *m;
    st = cg_model_create(err, &c, &m);
    if (st != CHARGAN_OK)
        return st;
    if (n_tensors != m->n_tensors) {
        /* the message reads m: format it before freeing */
        st = cg_fail(err, CHARGAN_E_FORMAT, "model section: %u tensors, the configuration "
                     "implies %zu", n_tensors, m->n_tensors);
        chargan_model_free(m);
        return st;
    }
    m->rng = rng;
    for (size_t i = 0; i < m->n_tensors; i++) {
        const cg_tensor *t = &m->tensors[i];
        uint32_t len, rank;
        uint64_t d0, d1;
        const uint8_t *name;
        size_t at = r->pos;
        if (!cg_get_u32(r, &len) || len >= sizeof t->name || !cg_get_view(r, &name, len) ||
            !cg_get_u32(r, &rank) || !cg_get_u64(r, &d0) || !cg_get_u64(r, &d1)) {
            chargan_model_free(m);
            return cg_fail(err, CHARGAN_E_FORMAT, "model section: bad or truncated header of "
                           "tensor %zu at offset %zu", i, at);
        }
        /* messages are formatted before the model (and t with it) is freed */
        chargan_status bad = CHARGAN_OK;
        float *p = m->params + t->offset;
        if (len != strlen(t->name) || memcmp(name, t->name, len) != 0 || rank != t->rank ||
            d0 != t->shape[0] || d1 != t->shape[1]) {
            bad = cg_fail(err, CHARGAN_E_FORMAT, "model section: tensor %zu at offset %zu is "
                          "'%.*s' of rank %u [%llu, %llu], expected '%s' of rank %u [%zu, %zu]",
                          i, at, (int)len, (const char *)name, rank, (unsigned long long)d0,
                          (unsigned long long)d1, t->name, t->rank, t->shape[0], t->shape[1]);
        } else if (!cg_get_f32_array(r, p, t->numel)) {
            bad = cg_fail(err, CHARGAN_E_FORMAT, "model section: tensor '%s' truncated at offset "
                          "%zu (%zu floats expected)", t->name, r->pos, t->numel);
        } else {
            for (size_t k = 0; k < t->numel && bad == CHARGAN_OK; k++)
                if (!isfinite(p[k]))
                    bad = cg_fail(err, CHARGAN_E_FORMAT, "model section: tensor '%s' element %zu "
                                  "is not finite", t->name, k);
        }
        if (bad != CHARGAN_OK) {
            chargan_model_free(m);
            return bad;
        }
    }
    *out = m;
    return CHARGAN_OK;
}

/* ------------------------------------------------------------------ model files */

static uint32_t model_tag(int kind)
{
    return kind == CHARGAN_GENERATOR ? CG_SEC_GENERATOR : CG_SEC_DISCRIMINATOR;
}

chargan_status chargan_model_save(chargan_model *m, const char *path)
{
    if (!m || !path)
        return cg_fail(m ? &m->err : NULL, CHARGAN_E_INVALID, "chargan_model_save: NULL argument");
    if (!cg_model_params_finite(m))
        return cg_fail(&m->err, CHARGAN_E_NUMERIC, "refusing to save '%s': the model has "
                       "non-finite parameters", path);
    cg_ckpt_writer cw;
    cg_ckpt_begin(&cw);
    if (m->tok) {
        void *buf;
        size_t size;
        chargan_status st = chargan_tokenizer_save_buffer(m->tok, &buf, &size);
        if (st != CHARGAN_OK) {
            cg_writer_free(&cw.w);
            return cg_fail_from(&m->err, st, "saving the tokenizer: ");
        }
        cg_ckpt_section_begin(&cw, CG_SEC_TOKENIZER);
        cg_put_bytes(&cw.w, buf, size);
        cg_ckpt_section_end(&cw);
        chargan_free(buf);
    }
    cg_ckpt_section_begin(&cw, model_tag(m->cfg.kind));
    cg_model_write(m, &cw.w);
    cg_ckpt_section_end(&cw);
    return cg_ckpt_finish(&cw, &m->err, path);
}

chargan_status cg_ckpt_read_model(cg_error *err, const cg_ckpt_file *f, const char *path,
                                  chargan_model_kind kind, chargan_model **out)
{
    const cg_ckpt_section *s = cg_ckpt_find(f, model_tag(kind));
    if (!s)
        return cg_fail(err, CHARGAN_E_NOT_FOUND, "%s: no %s in this checkpoint", path,
                       kind == CHARGAN_GENERATOR ? "generator" : "discriminator");
    cg_reader r;
    cg_reader_init(&r, s->payload, s->length);
    chargan_model *m;
    chargan_status st = cg_model_read(&r, err, &m);
    if (st != CHARGAN_OK)
        return cg_fail(err, st, "%s: %s (section at file offset %zu)", path, cg_thread_error(),
                       s->file_offset);
    if (cg_reader_left(&r) != 0) {
        chargan_model_free(m);
        return cg_fail(err, CHARGAN_E_FORMAT, "%s: %zu stray bytes at the end of the model section",
                       path, cg_reader_left(&r));
    }
    if (m->cfg.kind != (int32_t)kind) {
        chargan_model_free(m);
        return cg_fail(err, CHARGAN_E_FORMAT, "%s: the %s section at file offset %zu holds a %s",
                       path, kind == CHARGAN_GENERATOR ? "generator" : "discriminator",
                       s->file_offset, kind == CHARGAN_GENERATOR ? "discriminator" : "generator");
    }
    const cg_ckpt_section *ts = cg_ckpt_find(f, CG_SEC_TOKENIZER);
    if (ts) {
        chargan_tokenizer *tok;
        st = chargan_tokenizer_load_buffer(ts->payload, ts->length, &tok);
        if (st != CHARGAN_OK) {
            chargan_model_free(m);
            return cg_fail(err, st, "%s: tokenizer section: %s", path, cg_thread_error());
        }
        uint32_t size;
        chargan_tokenizer_vocab_size(tok, &size);
        if (size > m->cfg.vocab_size) {
            chargan_tokenizer_free(tok);
            st = cg_fail(err, CHARGAN_E_FORMAT, "%s: the tokenizer has %u ids, the model only %u",
                         path, size, m->cfg.vocab_size);
            chargan_model_free(m);
            return st;
        }
        cg_model_take_tokenizer(m, tok);
    }
    *out = m;
    return CHARGAN_OK;
}

chargan_status chargan_model_load(const char *path, chargan_model_kind kind, chargan_model **out)
{
    if (!path || !out)
        return cg_fail(NULL, CHARGAN_E_INVALID, "chargan_model_load: NULL argument");
    if (kind != CHARGAN_GENERATOR && kind != CHARGAN_DISCRIMINATOR)
        return cg_fail(NULL, CHARGAN_E_INVALID, "chargan_model_load: kind %d", (int)kind);
    cg_ckpt_file f;
    chargan_status st = cg_ckpt_open(NULL, path, &f);
    if (st != CHARGAN_OK)
        return st;
    st = cg_ckpt_read_model(NULL, &f, path, kind, out);
    cg_ckpt_close(&f);
    return st;
}

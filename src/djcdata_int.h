/* Internals shared by the djcdata files (djcdata.c reader, djcdata_source.c, djcdata_write.c),
 * and the writer's chunk payload limit, visible to tests (the reference's 0xFFFFFFFF - 400
 * bytes; tests lower it to produce multi-chunk qblocks with streaming references; not
 * thread-safe to change while writing). Not installed. */
#ifndef DJCT_DJCDATA_INT_H
#define DJCT_DJCDATA_INT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "djct/array.h"
#include "djct/qlz.h"

extern size_t djct_djcdata_chunk_limit;

#define DJCDATA_V20 0x40000000u /* the version floats 2.0f and 2.1f, as stored */
#define DJCDATA_V21 0x40066666u

extern const char *const djcdata_containers[3]; /* "features", "truths", "weights" */
static inline const djct_array *ccont_arr(const djct_record *r, int c)
{
    return c == 0 ? r->features : c == 1 ? r->truths : r->weights;
}
static inline size_t ccont_n(const djct_record *r, int c)
{
    return c == 0 ? r->n_features : c == 1 ? r->n_truths : r->n_weights;
}

static inline uint32_t le32(const unsigned char *b)
{
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}
static inline uint64_t le64(const unsigned char *b) { return (uint64_t)le32(b) | (uint64_t)le32(b + 4) << 32; }

/* ---- the byte source (djcdata_source.c) ---- */
typedef struct {
    const char *name;
    const unsigned char *mem; /* memory image, or NULL when reading fp */
    FILE *fp;
    uint64_t pos, size;
    unsigned char *tmp; /* chunk bytes read from fp */
    size_t tmpcap;
    djct_qlz_dstate *ds;
} src_t;


/** A source over the file at `path` (a regular file) or over `len` bytes at `buf`. */
int djcdata_src_open(src_t *s, const char *path);
int djcdata_src_mem(src_t *s, const void *buf, size_t len, const char *name);
void djcdata_src_close(src_t *s);
/** DJCT_EINVAL "file '<name>': byte <off>: <where>: <message>". */
int djcdata_src_err(src_t *s, uint64_t off, const char *where, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static inline uint64_t djcdata_src_left(const src_t *s) { return s->size - s->pos; }
/** Copy n bytes at the cursor into dst; a "truncated" error naming the field when they are missing. */
int djcdata_src_read(src_t *s, void *dst, size_t n, const char *where, const char *field);
/** A pointer to the next n bytes (memory: in place; file: into s->tmp), advancing the cursor. */
int djcdata_src_view(src_t *s, const unsigned char **p, size_t n, const char *where, const char *field);
int djcdata_src_seek(src_t *s, uint64_t pos);
int djcdata_rd_u8(src_t *s, unsigned *v, const char *where, const char *field);
int djcdata_rd_u32(src_t *s, uint32_t *v, const char *where, const char *field);
int djcdata_rd_u64(src_t *s, uint64_t *v, const char *where, const char *field);
/** A version float: exactly 2.0f or 2.1f; *is21 (may be NULL) tells which. */
int djcdata_rd_version(src_t *s, int *is21, const char *where, const char *field);
/** A string: u64 length + bytes, into a NUL-terminated copy. */
int djcdata_rd_str(src_t *s, char **out, const char *where, const char *field);

/* ---- the reader (djcdata.c) ---- */
/** 0 when the .djctd record in buf[0..len) can be appended to the file at `path` (its first
 *  record's arrays), else the error naming the difference. */
int djcdata_check_appendable(const char *path, const void *buf, size_t len);

#endif /* DJCT_DJCDATA_INT_H */

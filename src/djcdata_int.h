/* Internals shared by the djcdata files (djcdata.c reader, djcdata_array.c, djcdata_parts.c,
 * djcdata_source.c, djcdata_write.c),
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

/* ---- the layout of a .djctd's value blocks (djcdata.c fills it, djcdata_parts.c decodes) ---- */
typedef struct {
    uint64_t off, len; /* the chunk's bytes in the file, header included */
    uint64_t dsize;    /* what it decodes to */
    int      comp;     /* 0: stored */
} djcdata_chunk;

typedef struct {
    size_t   flat;       /* the array: features, then truths, then weights */
    uint64_t dst_off;    /* byte offset of this record's values in the file's concatenated array */
    uint64_t total;      /* decoded bytes of the chunks listed */
    size_t   first, n;   /* its chunks: chunks[first .. first + n) */
    char     where[240]; /* "record 1: array 'e' (truths[1]) data qblock", as the serial reader says */
} djcdata_block;

typedef struct {
    djcdata_block *blocks;
    size_t         nblocks, capb;
    djcdata_chunk *chunks;
    size_t         nchunks, capc;
    uint64_t      *flat_off; /* per flat array: value bytes of the records read so far */
    size_t         nflat;
    size_t         cur_flat; /* the flat index of the array being read */
} djcdata_layout;

/* ---- the byte source (djcdata_source.c) ---- */
typedef struct {
    const char *name;
    const unsigned char *mem; /* memory image, or NULL when reading fp */
    FILE *fp;
    uint64_t pos, size;
    unsigned char *tmp; /* chunk bytes read from fp */
    size_t tmpcap;
    djcdata_layout *lay; /* a layout pass: value blocks are listed here, not decoded */
} src_t;


/** A source over the file at `path` (a regular file) or over `len` bytes at `buf`. */
int djcdata_src_open(src_t *s, const char *path);
int djcdata_src_mem(src_t *s, const void *buf, size_t len, const char *name);
void djcdata_src_close(src_t *s);
/** DJCT_EINVAL "file '<name>': byte <off>: <where>: <message>". */
int djcdata_src_err(src_t *s, uint64_t off, const char *where, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/** The same message for a file by name (djcdata_src_err formats through it). */
int djcdata_err_at(const char *name, uint64_t off, const char *where, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/** The where-string of chunk i of a qblock ("<block where> chunk <i>"), into w[200]. */
void djcdata_chunk_where(char w[200], const char *block_where, unsigned i);
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

/* ---- one array (djcdata_array.c) ---- */
#define DJCDATA_MAX_NDIM 8 /* DJCT_MAX_DIMS; the reference uses up to 6 */
/* what a read does with value blocks; MODE_PARTS: as FULL, but value blocks are listed in the
 * source's layout, not decoded */
enum { MODE_SKIP = 0, MODE_META = 1, MODE_FULL = 2, MODE_PARTS = 3 };
/** The where-string for messages: "array 'name' (cont[idx])" or "cont[idx]", prefixed
 *  "record <rec>: " for records > 0. */
void djcdata_array_where(char *w, size_t n, const char *cont, size_t idx, size_t rec, const char *name);
/** One array record at the cursor (section 3) into *a (cleared first; on an error nothing is
 *  left to free); `cont`, `idx`, `rec` name it in messages. */
int djcdata_read_array(src_t *s, djct_array *a, int mode, const char *cont, size_t idx, size_t rec);

/* ---- the reader (djcdata.c) ---- */
/** 0 when the .djctd record in buf[0..len) can be appended to the file at `path` (its first
 *  record's arrays), else the error naming the difference. */
int djcdata_check_appendable(const char *path, const void *buf, size_t len);

/** The layout pass over a source with s->lay set (path: a file, sniffed for .djcsa as
 *  djct_djcdata_read does; NULL: a memory image, read as .djctd): every check of the reader in the same
 *  order, row splits decoded, but each value block only listed in s->lay (its chunk headers
 *  checked as the decoder would). *out gets the whole-file record with values NULL (a .djcsa:
 *  its array read whole, nothing listed). On an error the blocks listed so far stay listed: the
 *  serial reader would have decoded them before meeting the error. */
int djcdata_layout_pass(src_t *s, djct_record *out, const char *path);

/* ---- a .djctd decoded in parts (djcdata_parts.c) ----
 * The layout pass runs first (serially); then the value blocks, which depend on nothing but their
 * own chunks, may be decoded in any order by any threads (each block by one thread at a time);
 * finish returns the record, or the error the serial reader (djct_djcdata_read) gives: the first
 * failing block in file order, else the layout pass's error. */
typedef struct djcdata_parts djcdata_parts;

/** Run the layout pass over the file at `path` (buf == NULL) or over buf[0..len) named `path`.
 *  Fails only when nothing can be set up (open, memory); a malformed file gives parts whose
 *  finish returns the error. */
int djcdata_parts_open(djcdata_parts **out, const char *path, const void *buf, size_t len);
/** Value blocks to decode. */
size_t djcdata_parts_count(const djcdata_parts *p);
/** Decode block i (0 <= i < count) into place; *scratch / *scratch_cap: the thread's buffer for
 *  compressed bytes read from a file (grown as needed, the caller frees it). Returns the block's
 *  result, also kept for finish. Different blocks may be decoded concurrently. */
int djcdata_parts_decode(djcdata_parts *p, size_t i, unsigned char **scratch, size_t *scratch_cap);
/** After every block up to the first failing one was decoded: *out = the record (yours), or the
 *  error. Call once. */
int djcdata_parts_finish(djcdata_parts *p, djct_record *out);
void djcdata_parts_free(djcdata_parts *p);

#endif /* DJCT_DJCDATA_INT_H */

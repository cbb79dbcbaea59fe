/* QuickLZ 1.5.0, compression level 3, with the 1,000,000-byte streaming buffer, exactly as
 * djcdata configures it (djcdata.md section 9). Chunks are self-describing: a 3- or 9-byte
 * header (flags, compressed size including the header, decompressed size) and a body.
 * The decoder is fully bounds-checked: corrupt input gives DJCT_EINVAL, never an out-of-bounds
 * access. States are heap objects (about 1 MB decoder, 1.5 MB encoder), reusable after
 * djct_qlz_*_reset(); one state must not be used by two threads at once. */
#ifndef DJCT_QLZ_H
#define DJCT_QLZ_H

#include "common.h"

DJCT_BEGIN_DECLS

/** Size of the streaming buffer both sides share (QLZ_STREAMING_BUFFER). */
#define DJCT_QLZ_STREAMING_BUFFER 1000000u
/** Largest chunk payload the compressor accepts (0xFFFFFFFF - 400). */
#define DJCT_QLZ_MAX_CHUNK ((size_t)0xFFFFFFFFu - 400u)
/** Worst-case compressed chunk size for `n` input bytes (header + body, stored or compressed). */
#define DJCT_QLZ_BOUND(n) ((size_t)(n) + ((size_t)(n) / 8u) + 64u)

typedef struct djct_qlz_dstate djct_qlz_dstate; /* decompressor: streaming buffer + counter */
typedef struct djct_qlz_cstate djct_qlz_cstate; /* compressor: hash table + streaming buffer */

/** A fresh decompressor state (one per djcdata qblock; reset it between blocks).
 *  Release with djct_qlz_dstate_free(). */
DJCT_API int djct_qlz_dstate_create(djct_qlz_dstate **out);
/** Make the state fresh again (as after create). */
DJCT_API void djct_qlz_dstate_reset(djct_qlz_dstate *s);
/** NULL is fine. */
DJCT_API void djct_qlz_dstate_free(djct_qlz_dstate *s);

/** A fresh compressor state. Release with djct_qlz_cstate_free(). */
DJCT_API int djct_qlz_cstate_create(djct_qlz_cstate **out);
DJCT_API void djct_qlz_cstate_reset(djct_qlz_cstate *s);
DJCT_API void djct_qlz_cstate_free(djct_qlz_cstate *s);

/** Parse a chunk header at `src` (at least 3, or 9, bytes of `avail` must be present):
 *  *csize = whole chunk length including the header, *dsize = decompressed length,
 *  *compressed = body is QuickLZ-coded (0: stored). Rejects flag bytes other than
 *  0x6C..0x6F (other QuickLZ settings) and sizes too small for the header.
 *  Messages start "byte N of the chunk: ..." where N is relative to `src`. */
DJCT_API int djct_qlz_header(size_t *csize, size_t *dsize, int *compressed, const void *src,
                             size_t avail);

/** Decompress one chunk of exactly `src_len` bytes (its csize must equal src_len) into
 *  dst[0..dsize), with dsize <= dst_cap, continuing the stream in `s` (section 9.2: streaming
 *  into the state's buffer, or direct when the chunk does not fit in the rest of it).
 *  *out_len = dsize. On corrupt input returns DJCT_EINVAL with the body byte offset. */
DJCT_API int djct_qlz_decompress(djct_qlz_dstate *s, const void *src, size_t src_len, void *dst,
                                 size_t dst_cap, size_t *out_len);

/** Compress `n` bytes (1 <= n <= DJCT_QLZ_MAX_CHUNK) as one chunk into dst (dst_cap >=
 *  DJCT_QLZ_BOUND(n)), continuing the stream in `s`; output is byte-identical to the reference
 *  qlz_compress (except that the up-to-9-byte minimum body is zero-padded, where the reference
 *  leaves uninitialised bytes). A stored chunk results when the data does not compress.
 *  *out_len = chunk length (csize). */
DJCT_API int djct_qlz_compress(djct_qlz_cstate *s, const void *src, size_t n, void *dst,
                               size_t dst_cap, size_t *out_len);

/** Write a stored (uncompressed) chunk of n bytes (1 <= n <= 0xFFFFFFFF-9): 3-byte header when
 *  `small_header` and n <= 252, else 9-byte. Does not touch any state: use it only when the
 *  reader's stream position does not matter (a stored chunk still advances the reader's
 *  streaming counter, see section 9.2). *out_len = n + header. */
DJCT_API int djct_qlz_store(const void *src, size_t n, void *dst, size_t dst_cap, int small_header,
                            size_t *out_len);

DJCT_END_DECLS

#endif /* DJCT_QLZ_H */

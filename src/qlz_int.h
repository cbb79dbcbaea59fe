/* QuickLZ internals shared with the djcdata reader: the same functions as qlz.h, but the error
 * message carries no offset; *err_off receives the byte offset within the chunk instead, so the
 * caller can report an absolute file offset. */
#ifndef DJCT_QLZ_INT_H
#define DJCT_QLZ_INT_H

#include "djct/qlz.h"

int djct_qlz_header_int(size_t *csize, size_t *dsize, int *compressed, const unsigned char *p,
                        size_t avail, size_t *err_off);
int djct_qlz_decompress_int(djct_qlz_dstate *st, const unsigned char *src, size_t src_len,
                            unsigned char *dst, size_t dst_cap, size_t *out_len, size_t *err_off);

/* What a decoder checks before the body, from the chunk's first `avail` bytes (its header; at
 * most 9 are read): the header (djct_qlz_header_int), a chunk size equal to `len` (the bytes the
 * block gives the chunk), and a decompressed size of at most `room`. *dsize and *compressed as
 * djct_qlz_header. */
int djct_qlz_check_at(size_t *dsize, int *compressed, const unsigned char *head, size_t avail, size_t len,
                      size_t room, size_t *err_off);

/* Decode one chunk of exactly `len` bytes straight into block[pos .. pos + dsize), with
 * dsize <= cap - pos, the stream's history being block[pos - *counter .. pos): the earlier chunks
 * of the same block, already decoded there. *counter follows djct_qlz_decompress's streaming rule
 * (start a block at 0; see djct_qlz_counter_advance). Stateless and thread-safe: threads may
 * decode different blocks at once. Output and errors are those of djct_qlz_decompress through
 * one state from the block's first chunk. */
int djct_qlz_decompress_at(size_t *counter, const void *chunk, size_t len, unsigned char *block, size_t pos,
                           size_t cap, size_t *out_len, size_t *err_off);

/* The streaming counter after a chunk of `dsize` bytes (compressed or stored, 1 <= dsize): the
 * chunk joins the history while it fits in the streaming buffer; one that does not is decoded
 * direct and starts the history again. */
static inline void djct_qlz_counter_advance(size_t *counter, size_t dsize)
{
    *counter = *counter + dsize - 1 >= DJCT_QLZ_STREAMING_BUFFER ? 0 : *counter + dsize;
}

#endif /* DJCT_QLZ_INT_H */

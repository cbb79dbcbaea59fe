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

/* A stored chunk of dsize bytes (already validated with djct_qlz_header_int and copied to its
 * destination by the caller): advance the stream exactly as djct_qlz_decompress would. */
void djct_qlz_stored_into_state(djct_qlz_dstate *st, const unsigned char *data, size_t dsize);

#endif /* DJCT_QLZ_INT_H */

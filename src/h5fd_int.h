/* djct's libhdf5 file driver (src/h5fd.c): reads like the default driver and refuses corrupt
 * global heap collections before libhdf5 parses them. */
#ifndef DJCT_H5FD_INT_H
#define DJCT_H5FD_INT_H

#include <hdf5.h>
#include <stddef.h>

/* File access properties for reading with the checking driver (the default driver where it is
 * not built: libhdf5 other than 1.10). Owned by djct; do not close. */
hid_t djct_h5_fapl(void);

/* While on (per thread), reads of raw data that start a global heap collection are checked:
 * libhdf5 reads global heaps as raw data. djct turns it on around string attribute reads. */
void djct_h5_fd_check_heaps(int on);

/* 0 when the global heap collection image b[0..n) (n >= its declared size) is safe for libhdf5
 * 1.10's loader and H5HG_read: every object inside the collection, every record advancing; else
 * -1 with the reason in why. len_size is the superblock's "size of lengths". */
int djct_h5_check_gheap(const unsigned char *b, size_t n, unsigned len_size, char *why, size_t cap);

#endif /* DJCT_H5FD_INT_H */

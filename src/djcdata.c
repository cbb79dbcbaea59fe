/* djcdata .djcsa/.djctd/.djcdc readers and writers (stub: being implemented). */
#include "djct/djcdata.h"
#include "djct/error.h"
#include "djct_int.h"

djct_format djct_djcdata_format_of(const char *path) { (void)path; return DJCT_FORMAT_UNKNOWN; }
#define STUB return djct_error_set(DJCT_ENOTSUP, "%s: not implemented yet", __func__)
int djct_djcdata_read_meta(djct_file_meta *out, const char *path) { STUB; }
int djct_djcdata_read(djct_record *out, const char *path) { STUB; }
int djct_djcdata_read_mem(djct_record *out, const void *buf, size_t len, const char *n) { STUB; }
int djct_djcdata_count_records(size_t *n_records, const char *path) { STUB; }
int djct_djcdata_read_record(djct_record *out, const char *path, size_t index) { STUB; }
int djct_djcdata_write(const char *path, const djct_record *rec, const djct_djcdata_write_options *o) { STUB; }
int djct_djcdata_write_mem(void **buf, size_t *len, const djct_record *rec, const djct_djcdata_write_options *o) { STUB; }
int djct_djcsa_read(djct_array *out, const char *path) { STUB; }
int djct_djcsa_read_mem(djct_array *out, const void *buf, size_t len, const char *n) { STUB; }
int djct_djcsa_write(const char *path, const djct_array *a, const djct_djcdata_write_options *o) { STUB; }
int djct_djcsa_write_mem(void **buf, size_t *len, const djct_array *a, const djct_djcdata_write_options *o) { STUB; }
int djct_djcdc_read(char ***paths, size_t *n, int64_t *bs, int *sq, const char *path) { STUB; }
int djct_djcdc_read_mem(char ***paths, size_t *n, int64_t *bs, int *sq, const void *buf, size_t len,
                        const char *base, const char *nm) { STUB; }
void djct_djcdc_free(char **paths, size_t n) { (void)paths; (void)n; }

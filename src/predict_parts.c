/* Prediction's part files (src/predict_int.h): every rank appends its batches' records to its own
 * part next to the output, and rank 0 joins the parts in rank order into a temporary file that is
 * renamed into place. Rank r's part holds its shard's events in input order, so the joined file
 * has the input's order; a failed run leaves neither parts nor a half-written output. */
#include "djct/predict.h"
#include "djct/djcdata.h"
#include "djct/error.h"
#include "djct/h5.h"
#include "djct_int.h"
#include "predict_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void predict_part_name(char *buf, size_t n, const char *out_path, int rank, int format)
{
    snprintf(buf, n, "%s.part-%d.%s", out_path, rank, format == DJCT_FORMAT_H5 ? "h5" : "djctd");
}

int predict_part_create(predict_part *p, const char *out_path, int rank, int format)
{
    memset(p, 0, sizeof(*p));
    p->format = format;
    predict_part_name(p->path, sizeof(p->path), out_path, rank, format);
    if (!(p->f = fopen(p->path, "wb")))
        return djct_error_set(DJCT_EIO, "predict: cannot create '%s' next to the output: %s; pass an output in a "
                              "writable directory", p->path, strerror(errno));
    p->made = 1;
    if (format == DJCT_FORMAT_H5) { /* the HDF5 writer creates it again at the first record */
        fclose(p->f);
        p->f = NULL;
    }
    return 0;
}

int predict_part_append(predict_part *p, const djct_record *rec)
{
    int rc;
    if (p->format == DJCT_FORMAT_H5) {
        djct_h5_write_options wo = DJCT_H5_WRITE_OPTIONS_INIT;
        wo.chunk_bytes = 64 << 10; /* a temporary file: small chunks waste little on small parts */
        if (!p->h5 && (rc = djct_h5_writer_create(&p->h5, p->path, rec, &wo)))
            return rc;
        return djct_h5_writer_append(p->h5, rec);
    }
    void *buf = NULL;
    size_t len = 0;
    if ((rc = djct_djcdata_write_mem(&buf, &len, rec, NULL)))
        return djct_error_prefix("part '%s'", p->path);
    int ok = fwrite(buf, 1, len, p->f) == len;
    free(buf);
    if (!ok)
        return djct_error_set(DJCT_EIO, "part '%s': write failed: %s", p->path, strerror(errno));
    return 0;
}

int predict_part_close(predict_part *p)
{
    int rc = 0;
    if (p->h5) {
        rc = djct_h5_writer_close(p->h5);
        p->h5 = NULL;
    }
    if (p->f) {
        if (fclose(p->f) != 0 && rc == 0)
            rc = djct_error_set(DJCT_EIO, "part '%s': %s", p->path, strerror(errno));
        p->f = NULL;
    }
    return rc;
}

void predict_part_remove(predict_part *p)
{
    predict_part_close(p);
    if (p->made)
        remove(p->path);
    p->made = 0;
}

static int copy_into(FILE *dst, const char *src, const char *dst_name)
{
    FILE *in = fopen(src, "rb");
    if (!in)
        return djct_error_set(DJCT_EIO, "part '%s': %s", src, strerror(errno));
    char *buf = malloc(1 << 20);
    int rc = buf ? 0 : djct_error_oom();
    size_t n;
    while (rc == 0 && (n = fread(buf, 1, 1 << 20, in)) > 0)
        if (fwrite(buf, 1, n, dst) != n)
            rc = djct_error_set(DJCT_EIO, "'%s': write failed: %s", dst_name, strerror(errno));
    if (rc == 0 && ferror(in))
        rc = djct_error_set(DJCT_EIO, "part '%s': read failed", src);
    free(buf);
    fclose(in);
    return rc;
}

/* HDF5: the parts read back through the dataset (in order, a bounded batch at a time) and
 * appended to one writer */
static int join_h5(const char *tmp, int gzip_level, char *const *parts, size_t nparts, int any_ragged)
{
    djct_dataset_options d = DJCT_DATASET_OPTIONS_INIT;
    d.shuffle = DJCT_SHUFFLE_SHARDS;
    d.batch_elements = any_ragged ? (int64_t)1 << 20 : 0;
    d.batch_events = 65536;
    d.prefetch_depth = 1;
    d.prefault_bytes = 0;
    djct_dataset *ds = NULL;
    djct_h5_writer *w = NULL;
    djct_h5_write_options wo = DJCT_H5_WRITE_OPTIONS_INIT;
    wo.gzip_level = gzip_level;
    djct_batch *b = NULL;
    int rc = djct_dataset_open_files(&ds, (const char *const *)parts, nparts, &d);
    /* chunks of about an array's data, 16 KiB to 1 MiB: a partly filled chunk takes its whole
     * size, so small outputs get small chunks */
    double bytes = 0;
    size_t narr = 0;
    for (size_t i = 0; rc == 0 && i < nparts; i++) {
        const djct_record *l = &djct_dataset_file(ds, i)->layout;
        const djct_array *lists[2] = {l->features, l->truths};
        size_t ns[2] = {l->n_features, l->n_truths};
        for (int c = 0; c < 2; c++)
            for (size_t k = 0; k < ns[c]; k++) {
                const djct_array *a = &lists[c][k];
                double rows = djct_array_is_ragged(a) ? (double)-a->shape[1] : (double)a->shape[0];
                bytes += rows * (double)djct_array_inner_size(a) * 4.0;
                narr += i == 0;
            }
    }
    bytes /= narr ? (double)narr : 1.0;
    wo.chunk_bytes = bytes < 16384 ? 16384 : bytes > 1048576 ? 1048576 : (size_t)bytes;
    while (rc == 0 && (rc = djct_dataset_next(ds, &b)) == 0 && b) {
        if (b->n_events && !w)
            rc = djct_h5_writer_create(&w, tmp, &b->record, &wo);
        if (rc == 0 && b->n_events)
            rc = djct_h5_writer_append(w, &b->record);
        djct_batch_release(ds, b);
    }
    int crc = djct_h5_writer_close(w);
    rc = rc ? rc : crc;
    djct_dataset_free(ds);
    if (rc == 0) { /* the data reached the disk before the name does */
        FILE *f = fopen(tmp, "rb+");
        if (!f || fsync(fileno(f)) != 0)
            rc = djct_error_set(DJCT_EIO, "'%s': %s", tmp, strerror(errno));
        if (f)
            fclose(f);
    }
    return rc;
}

int predict_parts_join(const char *out_path, int format, int gzip_level, char *const *parts, size_t nparts,
                       int any_ragged)
{
    char tmp[4400];
    snprintf(tmp, sizeof(tmp), "%s.tmp-%ld", out_path, (long)getpid());
    int rc = 0;
    if (format == DJCT_FORMAT_DJCTD) { /* .djctd records back to back: the parts concatenated */
        FILE *out = fopen(tmp, "wb");
        if (!out)
            return djct_error_set(DJCT_EIO, "'%s': cannot create: %s", tmp, strerror(errno));
        for (size_t i = 0; i < nparts && rc == 0; i++)
            rc = copy_into(out, parts[i], tmp);
        if (rc == 0 && (fflush(out) != 0 || fsync(fileno(out)) != 0))
            rc = djct_error_set(DJCT_EIO, "'%s': %s", tmp, strerror(errno));
        if (fclose(out) != 0 && rc == 0)
            rc = djct_error_set(DJCT_EIO, "'%s': %s", tmp, strerror(errno));
    } else {
        rc = join_h5(tmp, gzip_level, parts, nparts, any_ragged);
    }
    if (rc == 0 && rename(tmp, out_path) != 0)
        rc = djct_error_set(DJCT_EIO, "'%s': cannot rename '%s' into place: %s", out_path, tmp, strerror(errno));
    if (rc)
        remove(tmp);
    return rc;
}

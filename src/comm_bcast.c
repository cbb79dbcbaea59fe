/* comm's broadcast of buffer lists (host through MPI in 1 GiB chunks, device through NCCL or, on
 * the MPI backend, through a host copy) and the cross-rank consistency check: a 64-bit hash of
 * each buffer compared with rank 0's, so every rank learns which ranks differ and where. Both are
 * one-off operations: before touching device memory they wait for every stream of the device (the
 * producer's work that wrote it), and they return with comm's stream drained. */
#include "comm_int.h"
#include "djct_int.h"
#include "util_int.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int djct_comm_broadcast(djct_comm *c, const djct_comm_buffer *bufs, size_t n, int root)
{
    DJCT_CHECK_ARG(c);
    if (root < 0 || root >= c->size)
        return djct_error_set(DJCT_EINVAL, "rank %d: broadcast root %d; use 0..%d", c->rank, root, c->size - 1);
    int rc = comm_check_buffers(c, bufs, n, 1);
    if ((rc = comm_agree(c, rc, "djct_comm_broadcast")) < 0)
        return rc;
    if ((rc = comm_enter(c, "broadcast layout check", SIZE_MAX)) < 0 ||
        (rc = comm_agree_sig(c, DJCT_EINVAL, comm_layout_sig(bufs, n), "buffer lists (counts, dtypes)", "; every rank must pass the same buffers",
                        NULL, NULL)) < 0)
        return rc;
    int dev = 0;
    for (size_t i = 0; i < n; i++)
        dev |= bufs[i].device >= 0;
    if (dev && (rc = comm_agree(c, comm_gpu_device_sync(c->gpu), "waiting for the device before the broadcast")) < 0)
        return rc;
    for (size_t i = 0; i < n; i++) {
        size_t bytes = bufs[i].count * djct_dtype_size(bufs[i].dtype);
        if ((rc = comm_enter(c, "broadcast buffer", i)) < 0)
            return rc;
        if (bufs[i].device >= 0 && c->nccl) {
            if ((rc = djct_nccl_broadcast(c->nccl, bufs[i].ptr, bytes, root)) < 0 || (rc = comm_gpu_sync(c->gpu)) < 0)
                return rc;
            continue;
        }
        /* device memory without NCCL: the root's bytes go down to the host, through MPI, and back
         * up on every other rank (pageable memory: the copies are synchronous anyway) */
        char *host = bufs[i].ptr, *tmp = NULL;
        if (bufs[i].device >= 0) {
            rc = (tmp = malloc(bytes ? bytes : 1)) ? 0 : djct_error_oom();
            if (rc == 0 && c->rank == root && (rc = comm_gpu_copy(c->gpu, tmp, bufs[i].ptr, bytes)) == 0)
                rc = comm_gpu_sync(c->gpu);
            if ((rc = comm_agree(c, rc, "staging a device buffer for the broadcast")) < 0) {
                free(tmp);
                return rc;
            }
            host = tmp;
        }
        for (size_t off = 0; rc == 0 && off < bytes;) { /* MPI counts are int */
            size_t chunk = bytes - off < ((size_t)1 << 30) ? bytes - off : (size_t)1 << 30;
            rc = comm_coll_bcast(c, host + off, (int)chunk, MPI_BYTE, root);
            off += chunk;
        }
        if (rc == 0 && tmp && c->rank != root && (rc = comm_gpu_copy(c->gpu, bufs[i].ptr, tmp, bytes)) == 0)
            rc = comm_gpu_sync(c->gpu);
        free(tmp);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* 64-bit hash of bytes: 8-byte words through a multiply-xorshift mix (memory-speed, not crypto) */
static uint64_t hash_bytes(uint64_t h, const void *data, size_t len)
{
    const unsigned char *s = data;
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t v;
        memcpy(&v, s + i, 8);
        h = (h ^ v) * 0x9e3779b97f4a7c15ull;
        h ^= h >> 29;
    }
    uint64_t tail = 0;
    memcpy(&tail, s + i, len - i);
    h = (h ^ tail ^ ((uint64_t)len << 56)) * 0xbf58476d1ce4e5b9ull;
    return h ^ (h >> 31);
}

int djct_comm_check_consistent(djct_comm *c, const djct_comm_buffer *bufs, size_t n, int *n_differing)
{
    DJCT_CHECK_ARG(c);
    if (n_differing)
        *n_differing = 0;
    int rc = comm_check_buffers(c, bufs, n, 1);
    uint64_t *h = calloc(n + 1, sizeof(uint64_t));
    if (rc == 0 && !h)
        rc = djct_error_oom();
    int dev = 0;
    for (size_t i = 0; rc == 0 && i < n; i++)
        dev |= bufs[i].device >= 0;
    if (dev) /* the producer's work on the buffers first */
        rc = comm_gpu_device_sync(c->gpu);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        size_t bytes = bufs[i].count * djct_dtype_size(bufs[i].dtype);
        const void *host = bufs[i].ptr;
        void *tmp = NULL;
        if (bufs[i].device >= 0) { /* one copy to the host, hashed there */
            rc = (tmp = malloc(bytes ? bytes : 1)) ? 0 : djct_error_oom();
            if (rc == 0 && (rc = comm_gpu_copy(c->gpu, tmp, bufs[i].ptr, bytes)) == 0)
                rc = comm_gpu_sync(c->gpu);
            host = tmp;
        }
        if (rc == 0)
            h[i] = hash_bytes((uint64_t)i, host, bytes);
        free(tmp);
        h[n] = h[n] * 31 + h[i];
    }
    if ((rc = comm_agree(c, rc, "djct_comm_check_consistent")) < 0 || (rc = comm_enter(c, "consistency check", SIZE_MAX)) < 0) {
        free(h);
        return rc;
    }
    /* rank 0's per-buffer hashes travel to everyone, so each rank finds its first differing buffer */
    uint64_t *h0 = malloc(sizeof(uint64_t) * (n + 1));
    int *first = malloc(sizeof(int) * (size_t)c->size);
    if (!h0 || !first) {
        free(h);
        free(h0);
        free(first);
        return djct_error_oom();
    }
    memcpy(h0, h, sizeof(uint64_t) * (n + 1));
    rc = n + 1 <= (size_t)INT32_MAX ? comm_coll_bcast(c, h0, (int)(n + 1), MPI_UINT64_T, 0)
                                    : djct_error_set(DJCT_EINVAL, "too many buffers (%zu)", n);
    int mine = -1;
    for (size_t i = 0; rc == 0 && i < n; i++)
        if (h[i] != h0[i]) {
            mine = (int)i;
            break;
        }
    if (rc == 0)
        rc = comm_coll_allgather(c, &mine, first, 1, MPI_INT);
    if (rc == 0) {
        char detail[200] = "";
        djct_rank_list bad = {.len = 0};
        for (int r = 0; r < c->size; r++)
            if (first[r] >= 0) {
                if (!bad.count)
                    snprintf(detail, sizeof(detail), " (first differing buffer on rank %d: %d)", r, first[r]);
                djct_rank_list_add(&bad, r);
            }
        if (n_differing)
            *n_differing = bad.count;
        if (bad.count)
            rc = djct_error_set(DJCT_ERROR, "parameters differ from rank 0 on rank%s %s%s; broadcast them from rank 0 "
                                "(djct_comm_broadcast) or look for rank-dependent initialisation",
                                djct_rank_list_plural(&bad), bad.text, detail);
    }
    free(h);
    free(h0);
    free(first);
    return rc;
}


/* Internals of the comm module shared within src/: the MPI communicator accessor for other
 * modules (log), and the GPU/NCCL backend's plain-C face (src/comm_nccl.c is the only file that
 * includes CUDA or NCCL headers). Not installed. */
#ifndef DJCT_COMM_INT_H
#define DJCT_COMM_INT_H

#include <mpi.h>

#include "djct/comm.h"

/** The comm's duplicate of MPI_COMM_WORLD, for other modules' collectives (e.g. the logging
 *  flush), so their traffic never mixes with user or watchdog traffic. */
MPI_Comm djct_comm_mpi(const djct_comm *comm);

/* ---- GPU / NCCL backend (src/comm_nccl.c) ------------------------------------------------ */
typedef struct djct_nccl djct_nccl;

/** Visible CUDA devices. Returns 0 with *count = 0 and a reason in `why` when there is none
 *  (no driver, no device, CUDA not compiled in). */
int djct_gpu_count(int *count, char *why, size_t why_cap);
/** cudaSetDevice; DJCT_ENCCL on failure. */
int djct_gpu_select(int device);

/** Bootstrap NCCL from MPI (collective over `mpi`): rank 0 ncclGetUniqueId, MPI_Bcast, then
 *  ncclCommInitRank on `device`. Every rank returns the same verdict. */
int djct_nccl_create(djct_nccl **out, MPI_Comm mpi, int rank, int size, int device);
void djct_nccl_free(djct_nccl *n);

typedef enum { DJCT_NCCL_SUM = 0, DJCT_NCCL_AVG = 1, DJCT_NCCL_PREMUL = 2 } djct_nccl_op;
/** In-place allreduce on the comm's stream; PREMUL multiplies each rank's input by `scale`. */
int djct_nccl_allreduce(djct_nccl *n, void *buf, size_t count, djct_dtype dt, djct_nccl_op op, double scale);
int djct_nccl_broadcast(djct_nccl *n, void *buf, size_t bytes, int root);
/** Stream-ordered device copy / zero fill. */
int djct_nccl_copy(djct_nccl *n, void *dst, const void *src, size_t bytes);
int djct_nccl_zero(djct_nccl *n, void *dst, size_t bytes);
/** Record an event after the work queued so far (*ticket), later query or wait for it. */
int djct_nccl_record(djct_nccl *n, void **event);
int djct_nccl_query(void *event, int *done);
void djct_nccl_event_free(void *event);
int djct_nccl_sync(djct_nccl *n);
int djct_dev_malloc(void **p, size_t bytes);
void djct_dev_free(void *p);
/** Synchronous device-to-host copy. */
int djct_dev_to_host(void *dst, const void *src, size_t bytes);

#endif /* DJCT_COMM_INT_H */

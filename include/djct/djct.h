/* Umbrella header: everything public in libdjct. Pulls in no MPI, CUDA or libtorch header,
 * compiles as C11 and as C++17. */
#ifndef DJCT_DJCT_H
#define DJCT_DJCT_H

#include "common.h"
#include "error.h"
#include "version.h"
#include "format.h"
#include "array.h"
#include "options.h"
#include "fileutil.h"
#include "checkpoint.h"
#include "signals.h"
#include "comm.h"
#include "model.h"
#include "optim.h"
#include "alloc.h"
#include "cpus.h"
#include "blas.h"
#include "log.h"
#include "h5.h"
#include "dataset.h"
#include "qlz.h"
#include "djcdata.h"
#include "train_controls.h"
#include "trainer.h"
#include "progress.h"
#include "predict.h"
#include "gen.h"

#endif /* DJCT_DJCT_H */

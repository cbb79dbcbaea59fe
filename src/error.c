/* Per-thread last error. The message lives in a fixed _Thread_local buffer so that even
 * out-of-memory can be reported without allocating. */
#include "djct/error.h"
#include "djct/version.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define MSG_MAX 1024

#if DJCT_HAVE_TORCH
#define DJCT_TORCH_WORD "yes"
#else
#define DJCT_TORCH_WORD "no"
#endif
#ifdef DJCT_HAVE_CUDA
#define DJCT_CUDA_WORD "yes"
#else
#define DJCT_CUDA_WORD "no"
#endif

static _Thread_local char tl_msg[MSG_MAX];
static _Thread_local int tl_code;

const char *djct_last_error(void) { return tl_msg; }

int djct_last_error_code(void) { return tl_code; }

int djct_error_set(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tl_msg, sizeof(tl_msg), fmt, ap);
    va_end(ap);
    tl_code = code;
    return code;
}

int djct_error_oom(void)
{
    /* no formatting: nothing here may allocate */
    memcpy(tl_msg, "out of memory", sizeof("out of memory"));
    tl_code = DJCT_ENOMEM;
    return DJCT_ENOMEM;
}

int djct_error_prefix(const char *fmt, ...)
{
    char old[MSG_MAX];
    memcpy(old, tl_msg, sizeof(old));
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tl_msg, sizeof(tl_msg), fmt, ap);
    va_end(ap);
    size_t used = n < 0 ? 0 : (size_t)n < sizeof(tl_msg) - 1 ? (size_t)n : sizeof(tl_msg) - 1;
    /* append ": " and the old message, truncating at the buffer end */
    const char *parts[2] = {": ", old};
    for (int i = 0; i < 2; i++) {
        size_t len = strlen(parts[i]), room = sizeof(tl_msg) - 1 - used;
        if (len > room)
            len = room;
        memcpy(tl_msg + used, parts[i], len);
        used += len;
    }
    tl_msg[used] = '\0';
    return tl_code;
}

void djct_error_clear(void)
{
    tl_msg[0] = '\0';
    tl_code = DJCT_OK;
}

const char *djct_error_name(int code)
{
    switch (code) {
    case DJCT_OK: return "OK";
    case DJCT_ERROR: return "ERROR";
    case DJCT_EINVAL: return "EINVAL";
    case DJCT_ENOMEM: return "ENOMEM";
    case DJCT_EIO: return "EIO";
    case DJCT_EMPI: return "EMPI";
    case DJCT_ETORCH: return "ETORCH";
    case DJCT_ETIMEOUT: return "ETIMEOUT";
    case DJCT_ENOTSUP: return "ENOTSUP";
    case DJCT_ENCCL: return "ENCCL";
    default: return "unknown";
    }
}

const char *djct_version(void) { return DJCT_VERSION_STRING; }

const char *djct_build_features(void)
{
    return "libtorch " DJCT_TORCH_WORD ", CUDA/NCCL " DJCT_CUDA_WORD;
}

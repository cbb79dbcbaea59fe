/* Values as users store them (docs/hdf5_layout.md, "Value types"): which dtypes of a file djct
 * reads, the dtype the model gets (float32 for floating point, int32 for integers and bools), and
 * the conversion. Widening conversions that cannot fail (float16, 8- and 16-bit integers) are
 * libhdf5's; narrowing ones (float64, 64-bit and unsigned 32-bit integers, bool, integers read as
 * float32) are read in the file's own width and converted here, where every value is checked: a
 * value the target cannot hold is an error naming the dataset and its row, never a silent wrap,
 * clip or infinity. */
#include "djct/error.h"
#include "djct_int.h"
#include "h5_file_int.h"

#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

/* float32 holds every integer of magnitude up to 2^24 exactly */
#define F32_EXACT_INT 16777216

static const char *class_name(H5T_class_t c)
{
    switch (c) {
    case H5T_STRING: return "a string";
    case H5T_COMPOUND: return "a compound (record)";
    case H5T_ARRAY: return "an array type";
    case H5T_VLEN: return "a variable-length sequence";
    case H5T_OPAQUE: return "opaque bytes";
    case H5T_BITFIELD: return "a bit field";
    case H5T_REFERENCE: return "a reference";
    case H5T_TIME: return "a time";
    default: return "not a number type";
    }
}

/* h5py's bool: an enum of one signed byte with exactly FALSE = 0 and TRUE = 1 */
static int is_h5py_bool(hid_t t)
{
    hid_t base = H5Tget_super(t);
    int ok = base >= 0 && H5Tget_class(base) == H5T_INTEGER && H5Tget_size(base) == 1 && H5Tget_nmembers(t) == 2;
    for (unsigned i = 0; ok && i < 2; i++) {
        int8_t v = -1;
        char *name = H5Tget_member_name(t, i);
        ok = name && H5Tget_member_value(t, i, &v) >= 0 &&
             ((v == 0 && !strcmp(name, "FALSE")) || (v == 1 && !strcmp(name, "TRUE")));
        H5free_memory(name);
    }
    if (base >= 0)
        H5Tclose(base);
    return ok;
}

int h5_conv_classify(h5_conv *c, hid_t t, int want, char *why, size_t nwhy)
{
    memset(c, 0, sizeof(*c));
    c->mem = -1;
    H5T_class_t cls = H5Tget_class(t);
    size_t sz = H5Tget_size(t);
    if (cls == H5T_FLOAT) {
        c->stored = sz == 2 ? "float16" : sz == 4 ? "float32" : sz == 8 ? "float64" : NULL;
        if (!c->stored) {
            snprintf(why, nwhy, "dtype: %zu-byte floating point; djct reads float16, float32 and float64: convert "
                     "with numpy .astype('float32')", sz);
            return -1;
        }
        if (want == DJCT_DTYPE_INT32) {
            snprintf(why, nwhy, "dtype: %s cannot be read as int32 (values would be truncated); store integers, or "
                     "read it as float32", c->stored);
            return -1;
        }
        c->target = DJCT_DTYPE_FLOAT32;
        c->mode = sz == 4 ? H5C_NATIVE : sz == 2 ? H5C_EXACT : H5C_CHECKED;
        c->mem = sz == 8 ? H5T_NATIVE_DOUBLE : H5T_NATIVE_FLOAT;
        c->src = sz == 8 ? H5C_SRC_F64 : H5C_SRC_NONE;
        c->src_size = sz == 8 ? 8 : 4;
        return 0;
    }
    if (cls == H5T_INTEGER) {
        int sgn = H5Tget_sign(t) == H5T_SGN_2;
        static const char *const names[2][9] = {
            {NULL, "uint8", "uint16", NULL, "uint32", NULL, NULL, NULL, "uint64"},
            {NULL, "int8", "int16", NULL, "int32", NULL, NULL, NULL, "int64"}};
        c->stored = sz <= 8 ? names[sgn][sz] : NULL;
        if (!c->stored) {
            snprintf(why, nwhy, "dtype: %zu-byte integer; djct reads 8-, 16-, 32- and 64-bit integers: convert "
                     "with numpy .astype('int32')", sz);
            return -1;
        }
        c->target = want == DJCT_DTYPE_FLOAT32 ? DJCT_DTYPE_FLOAT32 : DJCT_DTYPE_INT32;
        int f32 = c->target == DJCT_DTYPE_FLOAT32;
        if (sz <= 2) { /* every value fits either target exactly: libhdf5 converts */
            c->mode = H5C_EXACT;
            c->mem = f32 ? H5T_NATIVE_FLOAT : H5T_NATIVE_INT32;
            c->src_size = 4;
        } else if (sz == 4 && sgn && !f32) {
            c->mode = H5C_NATIVE;
            c->mem = H5T_NATIVE_INT32;
            c->src_size = 4;
        } else {
            c->mode = H5C_CHECKED;
            c->mem = sz == 4 ? (sgn ? H5T_NATIVE_INT32 : H5T_NATIVE_UINT32) : sgn ? H5T_NATIVE_INT64 : H5T_NATIVE_UINT64;
            c->src = sz == 4 ? (sgn ? H5C_SRC_I32 : H5C_SRC_U32) : sgn ? H5C_SRC_I64 : H5C_SRC_U64;
            c->src_size = sz;
        }
        return 0;
    }
    if (cls == H5T_ENUM && is_h5py_bool(t)) {
        c->stored = "bool";
        c->target = want == DJCT_DTYPE_FLOAT32 ? DJCT_DTYPE_FLOAT32 : DJCT_DTYPE_INT32;
        c->mode = H5C_CHECKED;
        c->src = H5C_SRC_BOOL;
        c->src_size = 1;
        /* the file's own enum in native order: libhdf5 then copies the bytes as they are, so a byte
         * other than 0 or 1 reaches the check instead of becoming libhdf5's fill value */
        if ((c->mem = H5Tget_native_type(t, H5T_DIR_ASCEND)) < 0) {
            snprintf(why, nwhy, "dtype: bool, but its memory type cannot be made");
            return -1;
        }
        c->own_mem = 1;
        return 0;
    }
    if (cls == H5T_ENUM)
        snprintf(why, nwhy, "dtype: an enum other than h5py's bool; store its integer values (numpy int32)");
    else
        snprintf(why, nwhy, "dtype: %s, not a number djct reads (float16/32/64, int8/16/32/64, uint8/16/32/64, "
                 "bool); convert with numpy .astype('float32') or 'int32'", class_name(cls));
    return -1;
}

void h5_conv_clear(h5_conv *c)
{
    if (c->own_mem && c->mem >= 0)
        H5Tclose(c->mem);
    c->mem = -1;
    c->own_mem = 0;
}

const char *h5_conv_rule(const h5_conv *c)
{
    switch (c->src) {
    case H5C_SRC_F64: return "rounded to nearest; a finite value beyond float32's range is an error";
    case H5C_SRC_BOOL: return "a byte other than 0 or 1 is an error";
    default:
        return c->target == DJCT_DTYPE_FLOAT32 ? "an integer beyond 2^24 is an error (float32 would round it)"
                                               : "a value outside int32 is an error";
    }
}

int64_t h5_conv_run(const h5_conv *c, const void *src, void *dst, size_t n, char *why, size_t nwhy)
{
    float *df = dst;
    int32_t *di = dst;
    int f32 = c->target == DJCT_DTYPE_FLOAT32;
    switch (c->src) {
    case H5C_SRC_F64: {
        const double *s = src;
        for (size_t i = 0; i < n; i++) {
            double v = s[i];
            if (isfinite(v) && fabs(v) > FLT_MAX) {
                snprintf(why, nwhy, "value %.17g is beyond float32's range (3.4e38)", v);
                return (int64_t)i;
            }
            df[i] = (float)v;
        }
        return -1;
    }
    case H5C_SRC_I32:
    case H5C_SRC_I64: {
        const int32_t *s32 = src;
        const int64_t *s64 = src;
        for (size_t i = 0; i < n; i++) {
            int64_t v = c->src == H5C_SRC_I32 ? s32[i] : s64[i];
            if (f32 ? (v > F32_EXACT_INT || v < -F32_EXACT_INT) : (v > INT32_MAX || v < INT32_MIN)) {
                snprintf(why, nwhy, "value %" PRId64 " %s", v,
                         f32 ? "is beyond 2^24, which float32 cannot hold exactly" : "is outside int32");
                return (int64_t)i;
            }
            if (f32)
                df[i] = (float)v;
            else
                di[i] = (int32_t)v;
        }
        return -1;
    }
    case H5C_SRC_U32:
    case H5C_SRC_U64: {
        const uint32_t *s32 = src;
        const uint64_t *s64 = src;
        for (size_t i = 0; i < n; i++) {
            uint64_t v = c->src == H5C_SRC_U32 ? s32[i] : s64[i];
            if (v > (f32 ? (uint64_t)F32_EXACT_INT : (uint64_t)INT32_MAX)) {
                snprintf(why, nwhy, "value %" PRIu64 " %s", v,
                         f32 ? "is beyond 2^24, which float32 cannot hold exactly" : "is outside int32");
                return (int64_t)i;
            }
            if (f32)
                df[i] = (float)v;
            else
                di[i] = (int32_t)v;
        }
        return -1;
    }
    case H5C_SRC_BOOL: {
        const uint8_t *s = src;
        for (size_t i = 0; i < n; i++) {
            if (s[i] > 1) {
                snprintf(why, nwhy, "byte %u is not a bool (0 or 1)", (unsigned)s[i]);
                return (int64_t)i;
            }
            if (f32)
                df[i] = (float)s[i];
            else
                di[i] = (int32_t)s[i];
        }
        return -1;
    }
    default:
        return -1;
    }
}

/* The format detector (include/djct/format.h): every place that chooses a reader asks it, so the
 * library and every app agree on what a file is. Content decides; the name only explains, and
 * names the format of an output that does not exist yet (djct_format_from_name). */
#include "djct/format.h"
#include "djct/error.h"
#include "djct_int.h"
#include "djcdata_int.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static int ends_with(const char *s, const char *end)
{
    size_t a = strlen(s), b = strlen(end);
    return a >= b && !strcmp(s + a - b, end);
}

djct_format djct_format_from_name(const char *path)
{
    if (!path)
        return DJCT_FORMAT_UNKNOWN;
    if (ends_with(path, ".h5") || ends_with(path, ".hdf5"))
        return DJCT_FORMAT_H5;
    if (ends_with(path, ".djctd"))
        return DJCT_FORMAT_DJCTD;
    if (ends_with(path, ".djcsa"))
        return DJCT_FORMAT_DJCSA;
    return DJCT_FORMAT_UNKNOWN;
}

/* what the name says the file is meant to be, for the message about a file that is not */
static const char *promised(const char *path)
{
    switch (djct_format_from_name(path)) {
    case DJCT_FORMAT_H5: return "an HDF5 file";
    case DJCT_FORMAT_DJCTD: return "a .djctd file";
    case DJCT_FORMAT_DJCSA: return "a .djcsa file";
    default: return NULL;
    }
}

static int is_version(uint32_t v) { return v == DJCDATA_V20 || v == DJCDATA_V21; }

int djct_format_detect(djct_format *out, const char *path)
{
    DJCT_CHECK_ARG(out);
    *out = DJCT_FORMAT_UNKNOWN;
    DJCT_CHECK_ARG(path);
    static const unsigned char hdf5_signature[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};
    unsigned char b[8];
    FILE *f = fopen(path, "rb");
    if (!f)
        return djct_error_set(DJCT_EIO, "file '%s': cannot open: %s", path, strerror(errno));
    size_t got = fread(b, 1, sizeof(b), f);
    int err = ferror(f);
    fclose(f);
    if (err)
        return djct_error_set(DJCT_EIO, "file '%s': cannot read its first bytes", path);
    if (got == 8 && !memcmp(b, hdf5_signature, 8)) {
        *out = DJCT_FORMAT_H5;
        return 0;
    }
    if (got == 8 && is_version(le32(b))) {
        *out = is_version(le32(b + 4)) ? DJCT_FORMAT_DJCSA : DJCT_FORMAT_DJCTD;
        return 0;
    }
    char first[32] = "";
    for (size_t i = 0, len = 0; i < got; i++)
        len += (size_t)snprintf(first + len, sizeof(first) - len, "%s%02x", i ? " " : "", b[i]);
    const char *meant = promised(path);
    if (got == 0)
        return djct_error_set(DJCT_EINVAL, "file '%s': empty; not a .djctd, .djcsa or HDF5 file", path);
    if (meant)
        return djct_error_set(DJCT_EINVAL, "file '%s': named like %s but its first bytes (%s) are not; is it damaged, "
                              "or another format under that name?", path, meant, first);
    return djct_error_set(DJCT_EINVAL, "file '%s': not a .djctd, .djcsa or HDF5 file (first bytes %s)", path, first);
}

const char *djct_format_name(djct_format f)
{
    return f == DJCT_FORMAT_DJCTD ? "djctd" : f == DJCT_FORMAT_DJCSA ? "djcsa" : f == DJCT_FORMAT_H5 ? "h5" : "unknown";
}

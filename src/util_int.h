/* Small helpers the library's modules share: clocks, FNV-1a hashing, the splitmix64 generator,
 * lists of ranks for messages, and whole-file reads and atomic writes. Not installed. */
#ifndef DJCT_UTIL_INT_H
#define DJCT_UTIL_INT_H

#include <stddef.h>
#include <stdint.h>

/* ---- clocks (src/util.c) ---- */

/** Seconds on the monotonic clock: for durations and timeouts. */
double djct_now_s(void);
/** Seconds since the Unix epoch on the wall clock: for timestamps only. */
double djct_wall_s(void);

/* ---- FNV-1a, 64 bit: fast, not cryptographic; inline, as hot loops (the logging buffer's index,
 * the plan hash) call them per name or per value ---- */

#define DJCT_FNV1A_OFFSET 0xcbf29ce484222325ull
#define DJCT_FNV1A_PRIME  0x100000001b3ull
/** Continue the hash `h` over `len` bytes. */
static inline uint64_t djct_fnv1a(uint64_t h, const void *data, size_t len)
{
    const unsigned char *p = (const unsigned char *)data;
    for (size_t i = 0; i < len; i++)
        h = (h ^ p[i]) * DJCT_FNV1A_PRIME;
    return h;
}
/** ... over a NUL-terminated string (without the NUL). */
static inline uint64_t djct_fnv1a_str(uint64_t h, const char *s)
{
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * DJCT_FNV1A_PRIME;
    return h;
}
/** ... over the 8 bytes of v, least significant first (the same on every host). */
static inline uint64_t djct_fnv1a_u64(uint64_t h, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        h = (h ^ ((v >> (8 * i)) & 0xff)) * DJCT_FNV1A_PRIME;
    return h;
}

/* ---- splitmix64 ---- */

/** The next value of a splitmix64 stream (Steele, Lea, Flood 2014): every seed gives a
 *  well-mixed, reproducible sequence on every platform. */
static inline uint64_t djct_splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* ---- rank lists for messages (src/util.c) ---- */

/** "2, 3, 7": ranks added in order; what does not fit the text is left out (count still counts). */
typedef struct {
    char   text[600];
    size_t len;
    int    count;
} djct_rank_list;
void djct_rank_list_add(djct_rank_list *l, int rank);
/** "s" when the list names more than one rank, else "": "rank%s %s". */
static inline const char *djct_rank_list_plural(const djct_rank_list *l) { return l->count > 1 ? "s" : ""; }

/* ---- files (src/fileutil.c; djct_path_join in src/util.c) ---- */

/** "dir/name", malloc'ed (NULL when out of memory). */
char *djct_path_join(const char *dir, const char *name);

/** Read the whole file into a malloc'ed, NUL-terminated buffer (*len may be NULL). `max_bytes`
 *  0: no limit, else a larger file is refused. With `missing_ok`, a file that does not exist
 *  returns 1 and *data = NULL. @return 0, 1, DJCT_EIO naming the path (cannot open, larger than
 *  max_bytes, read error), DJCT_ENOMEM. */
int djct_read_whole(void **data, size_t *len, const char *path, size_t max_bytes, int missing_ok);
/** Write `len` bytes to `path` through a temporary file in the same directory renamed into place,
 *  so readers see the old or the new content, never a mix. `durable`: fsync the file before the
 *  rename and the directory after it, so the new content survives a crash. */
int djct_write_atomic(const char *path, const void *data, size_t len, int durable);
/** fsync a file (dir 0) or a directory (dir 1). */
int djct_fsync_path(const char *path, int dir);

#endif /* DJCT_UTIL_INT_H */

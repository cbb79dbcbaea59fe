/* djct_train: the distributed trainer (issue 7). Until the trainer lands this only answers
 * --help/--version and says so, so the README's main command works from day one. */
#include <stdio.h>
#include <string.h>

#include "djct/djct.h"

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--version")) {
            printf("djct_train %s (%s)\n", djct_version(), djct_build_features());
            return 0;
        }
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("usage: djct_train [options]\n"
                   "The distributed trainer is not yet available in this build.\n");
            return 0;
        }
    }
    printf("djct_train %s: the trainer is not yet available; this build has %s\n", djct_version(),
           djct_build_features());
    return 0;
}

/* str.c — dhf_strdup (str.h). */
#include "core/str.h"

#include <stdlib.h>
#include <string.h>

char *dhf_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

/* str.h — the one string-duplication helper: strdup is POSIX, not C11, and dhf builds
 * as strict C11 (CMAKE_C_EXTENSIONS OFF). */
#ifndef DHF_CORE_STR_H
#define DHF_CORE_STR_H

/* A malloc'd copy of s (free() it), or NULL when out of memory. */
char *dhf_strdup(const char *s);

#endif

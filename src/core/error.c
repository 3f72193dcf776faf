/* error.c — thread-local error message storage for the C modules. */
#include "core/error.h"

#include <stdio.h>
#include <string.h>

#define DHF_ERR_CAP 2048
static _Thread_local char err_buf[DHF_ERR_CAP];

int dhf_err_set(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err_buf, sizeof err_buf, fmt, ap);
    va_end(ap);
    return -1;
}

int dhf_err_wrap(const char *fmt, ...)
{
    char prefix[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    size_t pl = strlen(prefix), ol = strlen(err_buf);
    size_t sep = ol ? 2 : 0;
    if (pl + sep >= DHF_ERR_CAP)
        pl = DHF_ERR_CAP - 1 - sep;
    size_t keep = ol;
    if (pl + sep + keep >= DHF_ERR_CAP)
        keep = DHF_ERR_CAP - 1 - pl - sep;
    /* shift the old message right, then write "prefix: " in front of it */
    memmove(err_buf + pl + sep, err_buf, keep);
    err_buf[pl + sep + keep] = '\0';
    memcpy(err_buf, prefix, pl);
    if (sep)
        memcpy(err_buf + pl, ": ", 2);
    return -1;
}

const char *dhf_err_msg(void) { return err_buf; }
void dhf_err_clear(void) { err_buf[0] = '\0'; }

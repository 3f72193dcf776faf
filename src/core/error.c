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
    char prefix[1024], old[DHF_ERR_CAP];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, err_buf, sizeof old);
    if (old[0])
        snprintf(err_buf, sizeof err_buf, "%s: %s", prefix, old);
    else
        snprintf(err_buf, sizeof err_buf, "%s", prefix);
    return -1;
}

const char *dhf_err_msg(void) { return err_buf; }
void dhf_err_clear(void) { err_buf[0] = '\0'; }

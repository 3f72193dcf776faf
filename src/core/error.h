/* error.h — the C side's error channel: a thread-local message set where a failure
 * is detected and read once by whoever reports it (the CLI prints it and exits 1).
 * Convention: functions return 0 on success and -1 on failure after calling
 * dhf_err_set(); a message names the file, the field and what was expected. */
#ifndef DHF_CORE_ERROR_H
#define DHF_CORE_ERROR_H

#include <stdarg.h>

#if defined(__GNUC__)
#define DHF_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define DHF_PRINTF(a, b)
#endif

/* Sets the message (replacing any previous one). Always returns -1. */
int dhf_err_set(const char *fmt, ...) DHF_PRINTF(1, 2);
/* Prefixes the current message with "<context>: " (adds context on the way up). */
int dhf_err_wrap(const char *fmt, ...) DHF_PRINTF(1, 2);
const char *dhf_err_msg(void);      /* "" when none; never NULL */
void dhf_err_clear(void);

#endif

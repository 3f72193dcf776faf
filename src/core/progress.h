/* progress.h — progress reporting for long loops. On a TTY stderr: one redrawn
 * line with count/total, rate, ETA and a caller-supplied note. Otherwise: a plain
 * line every `interval` seconds (default 10) and one at the end, so logs stay
 * readable. DHF_PROGRESS=0 silences it; DHF_PROGRESS=plain forces plain lines. */
#ifndef DHF_CORE_PROGRESS_H
#define DHF_CORE_PROGRESS_H

#include "core/clock.h"
#include <stdbool.h>
#include <stdint.h>

typedef struct {
    char label[64];
    int64_t total;          /* <= 0: unknown */
    int64_t done;
    double t_start, t_last_print;
    double interval;        /* seconds between plain lines */
    bool tty, enabled, finished;
    char unit[16];          /* "it", "img", "step", "pair" */
} dhf_progress;

void dhf_progress_begin(dhf_progress *p, const char *label, int64_t total);
void dhf_progress_set_unit(dhf_progress *p, const char *unit);
/* Advances by n; note (may be NULL) is shown at the end of the line. */
void dhf_progress_step(dhf_progress *p, int64_t n, const char *note);
void dhf_progress_end(dhf_progress *p);
/* "1h02m", "3m05s", "12.3s" into buf. */
void dhf_format_duration(double seconds, char *buf, int n);

#endif

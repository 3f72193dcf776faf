/* clock.h — the one wall clock: monotonic seconds, for progress, step timings and the
 * benches. */
#ifndef DHF_CORE_CLOCK_H
#define DHF_CORE_CLOCK_H

/* CLOCK_MONOTONIC in seconds (only differences mean anything). */
double dhf_now(void);

#endif

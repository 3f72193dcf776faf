/* table1.h — `dhf table1` as a library call: the paper's Table 1 (every Diffusion
 * Hyperfeatures row and its ablations) planned from one configuration as stages —
 * feature caches per model × feature setting × dataset split, training runs,
 * evaluations — each run through the library calls of dhf extract / train / eval,
 * each recorded when it finishes so a re-run redoes nothing that finished with the
 * same configuration, then reported beside the paper's numbers (table1.md,
 * table1.json, per-category tables, heatmaps, bootstrap intervals). docs/TABLE1.md
 * explains the rows and the protocol. */
#ifndef DHF_EXPERIMENT_TABLE1_H
#define DHF_EXPERIMENT_TABLE1_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "core/config.h"

typedef struct {
    const char *rows;       /* comma-separated row ids to run (NULL = every row) */
    bool dry_run;           /* print the plan, run nothing */
    bool progress;          /* progress bars of the stages */
    /* test hooks handed to the stages (as the commands' environment hooks) */
    int64_t abort_at_step;  /* training: exit after this step of the first run that reaches it */
    int abort_after;        /* extraction: exit after this many images of one stage */
} dhf_table1_options;

typedef struct {
    int stages;             /* in the plan (for the selected rows) */
    int done_before;        /* of them already done when the call started */
    int ran;                /* run by this call */
    char out_dir[4096];
} dhf_table1_summary;

/* Plans, prints the plan to stdout, runs what is missing (unless dry_run) and writes
 * the report. cfg must be validated; the caller sets the thread count. Returns 0, -1
 * with dhf_err_msg(), or -2 for an unknown row id (message lists the ids). */
int dhf_table1_run(const dhf_config *cfg, const dhf_table1_options *o, dhf_table1_summary *s);

/* The row ids and names, one per line, for --help. */
void dhf_table1_rows_help(FILE *f);

#endif

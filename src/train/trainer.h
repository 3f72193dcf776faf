/* trainer.h — `dhf train` as a library call: the aggregation network trained on
 * cached diffusion features (never the UNet) with the paper's recipe — AdamW in two
 * parameter groups, one shuffled pair per step, validation by PCK — plus what the
 * paper's script lacks: best.safetensors / last.safetensors, validation at the final
 * step, exact resume, guard rails. docs/TRAINING.md describes the run folder and the
 * resume semantics.
 *
 * Run folder <output_dir>/<run_name>/:
 *   config.resolved.yaml    the configuration (run_name filled in)
 *   metrics.jsonl           train / val records (train_metrics.h)
 *   last.safetensors        latest state: every checkpoint_every_n_steps steps, at
 *                           every validation and at the final step
 *   best.safetensors        state at the best validation checkpoint_metric so far
 *   heatmaps/mixing_step_NNNNNN.{png,svg,csv}   at every validation
 *
 * Exactness: a step depends only on the parameters, the AdamW state and the step
 * number (data order = counter-based generator, pair_sampler.h), all saved in
 * last.safetensors, so on the CPU with the same thread count a run resumed from any
 * checkpoint ends bit-identical to an uninterrupted one. */
#ifndef DHF_TRAIN_TRAINER_H
#define DHF_TRAIN_TRAINER_H

#include <stdbool.h>
#include <stdint.h>

#include "core/config.h"

/* Exit status of the DHF_TEST_ABORT_AT_STEP test hook (as a SIGKILL'ed process). */
#define DHF_TRAIN_TEST_ABORT_STATUS 137

typedef struct {
    const char *config_path;   /* first config file (names a derived run); may be NULL */
    const char *resume_dir;    /* run folder to continue; NULL = a new run */
    /* a new run starting from this checkpoint's parameters and AdamW state (moments and
     * step count), e.g. one `dhf import` made of the paper's weights; NULL = fresh
     * initialisation. The data order is the new run's own. */
    const char *init_from;
    /* Test hook (env DHF_TEST_ABORT_AT_STEP): _exit(DHF_TRAIN_TEST_ABORT_STATUS) once
     * step k's work (log line, validation, checkpoints) is done, as a crash at a step
     * boundary; 0 = off. */
    int64_t abort_at_step;
    bool progress;             /* progress bar on stderr */
} dhf_train_options;

typedef struct {
    char run_dir[4096];
    int64_t start_step;        /* steps already done when this call started */
    int64_t total_steps;
    int64_t steps_done;        /* by the end of this call */
    double last_loss;          /* loss of the final step (NaN when none ran) */
    bool has_best;
    char best_metric[64];
    double best_value;
    int64_t best_step;
    double seconds;
    long train_pairs, val_pairs;
} dhf_train_summary;

/* The run folder a new run writes: <output_dir>/<run_name>, run_name derived when ""
 * as "<config file stem>-<YYYYmmdd-HHMMSS>" ("run-..." without a file). */
int dhf_train_run_dir(const dhf_config *cfg, const char *config_path, char *run_name,
                      size_t name_cap, char *run_dir, size_t dir_cap);

/* The configuration of a run to resume: the run's own (last.safetensors, or its
 * config.resolved.yaml before the first checkpoint), then `files` and `sets`
 * ("key=value") applied in order, then compared with the run's: only keys that
 * cannot change the trained weights may differ (threads, device, val_every_n_steps,
 * checkpoint_every_n_steps, max_epochs, pck_threshold, cache_path, data_root,
 * model_id, eval.*, table1.*); any other difference is an error naming the key and both values.
 * run_name and output_dir always come from the folder. */
int dhf_train_resume_config(const char *run_dir, const char *const *files, int n_files,
                            const char *const *sets, int n_sets, dhf_config *out);

/* Trains. cfg must be validated. Returns 0, or -1 with dhf_err_msg(); a failed step
 * (e.g. a NaN/Inf loss) names the step and the last checkpoint, which is left as it
 * was. The caller sets the thread count. */
int dhf_train_run(const dhf_config *cfg, const dhf_train_options *opt, dhf_train_summary *sum);

#endif

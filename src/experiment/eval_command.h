/* eval_command.h — `dhf eval` as a library call: the provider table (pixels, raw
 * cached features, trained networks), the split rules of each dataset, the dataset
 * and provider opened from a configuration, the evaluation run and its reports
 * (results.json/.md, predictions.jsonl, config.resolved.yaml). cmd_eval parses the
 * command line over it; dhf table1 calls it once per evaluation stage. */
#ifndef DHF_EXPERIMENT_EVAL_COMMAND_H
#define DHF_EXPERIMENT_EVAL_COMMAND_H

#include <stdbool.h>
#include <stdio.h>

#include "core/config.h"
#include "eval/evaluate.h"

/* dhf_eval_command's status for a request the user spelled wrong (unknown provider,
 * a split the dataset does not have): the CLI answers it as a usage error. */
#define DHF_EVAL_BAD_REQUEST (-2)

typedef struct {
    const char *provider;     /* "NAME[:ARG]"; NULL = hyperfeatures with a checkpoint, else image */
    const char *checkpoint;   /* for the providers that take one; may be NULL */
    const char *split;        /* NULL = cfg->split (for CUB "trn" means train) */
    const char *out_dir;      /* required */
    bool dump_predictions;    /* also needs cfg->dump_predictions */
    bool mutual;              /* mark mutual nearest neighbours in predictions.jsonl */
    bool progress;
} dhf_eval_request;

/* Runs one evaluation. cfg must be validated; the caller sets the thread count.
 * res is filled (free it with dhf_eval_result_free) and *label gets
 * "<dataset> <split>, <subset>, <provider>" for the summary line. Returns 0, -1 with
 * dhf_err_msg(), or DHF_EVAL_BAD_REQUEST with the message. */
int dhf_eval_command(const dhf_config *cfg, const dhf_eval_request *rq, dhf_eval_result *res,
                     char *label, size_t label_cap);

/* The split a request evaluates ("train|test" for CUB, "trn|val|test" for SPair), or
 * NULL with the message when the dataset has no such split. */
const char *dhf_eval_split(const dhf_config *cfg, const char *split);

/* Opens the provider "NAME[:ARG]" (NULL: hyperfeatures with a checkpoint, else image)
 * for cfg. DHF_EVAL_BAD_REQUEST for an unknown name. */
int dhf_eval_open_provider(const dhf_config *cfg, const char *spec, const char *checkpoint,
                           dhf_provider *out);

/* The provider table as `--help` lists it. */
void dhf_eval_providers_help(FILE *f);

#endif

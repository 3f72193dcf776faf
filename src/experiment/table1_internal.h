/* table1_internal.h — what the Table 1 planner (table1_plan.c) and its report
 * (table1_report.c) share: the rows and relations of the paper's table
 * (table1_rows.c) and the plan's stages. */
#ifndef DHF_EXPERIMENT_TABLE1_INTERNAL_H
#define DHF_EXPERIMENT_TABLE1_INTERNAL_H

#include <stdbool.h>

#include "core/config.h"

/* ---- the paper's table ----------------------------------------------------- */

enum { T1_VIT = -1, T1_SD15 = 0, T1_SD21 = 1, T1_NMODELS };
enum { T1_ONE_STEP = 0, T1_MULTI_STEP = 1, T1_NSETTINGS };
enum { T1_SPAIR = 0, T1_CUB = 1, T1_NDATASETS };
/* the columns: SPair img, SPair bbox, CUB img */
enum { T1_COL_SPAIR_IMG = 0, T1_COL_SPAIR_BBOX, T1_COL_CUB_IMG, T1_NCOLS };

typedef struct {
    const char *id;           /* --rows name and file stem: "ours" */
    const char *name;         /* the paper's label: "Ours (SD-1.5)" */
    const char *shape;        /* layers × timesteps */
    int model, setting;       /* which features it reads (T1_VIT: a ViT baseline, no cache) */
    const char *provider;     /* dhf eval provider */
    const char *network;      /* trained network it reads (a t1_network id) or NULL */
    const char *unavailable;  /* why dhf cannot make the row, or NULL */
    double paper[T1_NCOLS];   /* the paper's figure, NAN where none is recorded here */
} t1_row;

typedef struct {
    const char *id;           /* "ours": its run folder and stage names */
    const char *name;
    int model, setting;
} t1_network;

typedef enum { T1_REL_APPROX, T1_REL_AT_LEAST, T1_REL_ABOVE } t1_rel_kind;

/* "a − b <kind> points", on SPair PCK@0.1 img */
typedef struct {
    const char *a, *b;        /* row ids */
    t1_rel_kind kind;
    double points;
    const char *text;         /* as the paper states it */
} t1_relation;

extern const t1_row t1_rows[];             /* terminated by id == NULL */
extern const t1_network t1_networks[];     /* terminated by id == NULL */
extern const t1_relation t1_relations[];   /* terminated by a == NULL */
extern const char *const t1_model_names[T1_NMODELS];     /* "sd15", "sd21" */
extern const char *const t1_setting_names[T1_NSETTINGS]; /* "one-step", "multi-step" */
extern const char *const t1_dataset_names[T1_NDATASETS]; /* "spair", "cub" */

const t1_row *t1_find_row(const char *id);
const t1_network *t1_find_network(const char *id);
/* Whether a relation holds for a difference a − b of diff points: "≈ d" within
 * approx_points of d, "≥ d" at least d, "> d" above d. */
bool t1_relation_holds(const t1_relation *rel, double diff, double approx_points);
/* Why a row cannot be made from this configuration, or NULL. */
const char *t1_row_unavailable(const dhf_config *c, const t1_row *r);

/* ---- the plan ---------------------------------------------------------------- */

typedef enum { T1_EXTRACT, T1_TRAIN, T1_EVAL } t1_kind;
typedef enum { T1_TODO, T1_DONE, T1_RESUME, T1_STALE, T1_BLOCKED } t1_state;

typedef struct {
    t1_kind kind;
    char id[128];             /* "extract-sd15-one-step-spair-trn": its record's file name */
    char what[256];           /* one line for the plan */
    dhf_config cfg;           /* what the library call gets */
    char output[4200];        /* cache file, run folder or evaluation folder */
    const t1_row *row;        /* T1_EVAL */
    int dataset;              /* T1_EVAL */
    char checkpoint[4200];    /* T1_EVAL with a network: the file it reads */
    int network_stage;        /* T1_EVAL: index of that network's training stage, -1 */
    t1_state state;
    char recipe[17];          /* hash of everything that determines the output */
} t1_stage;

typedef struct {
    const dhf_config *base;
    char out_dir[4096];
    char stage_dir[4200];     /* the records: <out>/stages/<id>.json */
    t1_stage *stages;
    int n, cap;
    bool row_selected[32];
} t1_plan;

/* The stages the rows of `rows` ("a,b"; NULL = all) need, ordered extract -> train ->
 * eval, each with its state. Returns 0, -1, or -2 for an unknown row id. Free with
 * t1_plan_free (also after a failure). */
int t1_plan_build(t1_plan *p, const dhf_config *cfg, const char *rows);
void t1_plan_free(t1_plan *p);
/* Recomputes a stage's recipe and state from its record and output. */
int t1_stage_refresh(const t1_plan *p, t1_stage *s);

/* The evaluation stage of a row on a dataset, or NULL when not planned. */
const t1_stage *t1_plan_eval(const t1_plan *p, const t1_row *row, int dataset);

/* Writes <out>/table1.md, table1.json, per_category/, heatmaps/ from the finished
 * evaluations of the plan; prints the table. */
int t1_report(const t1_plan *p);

#endif

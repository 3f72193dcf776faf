/* config.h — the run configuration: one typed struct with the paper code's key
 * names, filled from defaults, then YAML files, then `--set a.b=value` overrides.
 * A schema table (config.c) drives parsing, validation, YAML/JSON output and
 * docs/CONFIG.md, so a key is added in exactly two places: a field here and a
 * row in the table. Errors carry file:line:column and the key path. */
#ifndef DHF_CORE_CONFIG_H
#define DHF_CORE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define DHF_CFG_STR 1024
#define DHF_CFG_LIST 64

typedef struct { int n; int64_t v[DHF_CFG_LIST]; } dhf_int_list;
typedef struct { int n; double v[DHF_CFG_LIST]; } dhf_double_list;

typedef struct {
    /* ---- run ---- */
    char run_name[DHF_CFG_STR];        /* "" = derived from config file name + time */
    char output_dir[DHF_CFG_STR];      /* where runs land: <output_dir>/<run_name>/ */
    int64_t seed;
    int threads;                       /* 0 = number of cores */
    char device[64];                   /* "cpu", "cuda", "cuda:N" */

    /* ---- diffusion model and extraction (paper keys) ---- */
    char model_id[DHF_CFG_STR];        /* diffusers folder */
    char diffusion_mode[32];           /* "inversion" | "generation" */
    int num_timesteps;                 /* DDIM steps (50) */
    dhf_int_list save_timestep;        /* labels kept, [49,45,...,5,0] */
    char prompt[DHF_CFG_STR];
    char negative_prompt[DHF_CFG_STR];
    double guidance_scale;             /* -1 = no classifier-free guidance */
    char prompt_embeds[DHF_CFG_STR];   /* optional safetensors with encoder_hidden_states */
    int diffusion_resolution;          /* VAE input size (512) */
    char image_resize[16];             /* "pil" | "torch" | "pil_load": how images reach it */
    char vae_latent[16];               /* "sample" | "mean" */
    char dtype[16];                    /* compute dtype: "float32" | "float16" | "bfloat16" */
    char extract_kernels[16];          /* "onednn" | "libtorch" (CPU matrix products) */
    char cache_path[DHF_CFG_STR];      /* HDF5 feature cache */
    char cache_dtype[16];              /* "float16" | "float32" */
    int cache_compression;             /* 0 = off, 1..9 deflate (+shuffle) */
    bool flip_timesteps;               /* paper: reverse save_timestep when the model is loaded */

    /* ---- aggregation network and training (paper keys) ---- */
    int projection_dim;                /* P = 384 */
    int output_resolution;             /* R = 64 */
    int load_resolution;               /* eval/training image size (224) */
    int batch_size;                    /* pairs per step (1) */
    double lr;                         /* 1e-3 */
    double weight_decay;               /* 0 */
    int max_epochs;                    /* 1 */
    int max_steps_per_epoch;           /* 5000 */
    int val_every_n_steps;             /* 1000 */
    int checkpoint_every_n_steps;      /* last.safetensors every N steps (100; 0 = at validation only) */
    double pck_threshold;              /* validation alpha (0.1) */
    char aggregation_order[32];        /* "fast" | "straightforward" (same result) */
    char aggregation_kernels[32];      /* "auto" | "onednn" | "libtorch" (fast order, CPU) */
    char aggregation_conv_algorithm[32]; /* "auto" | "winograd" | "direct" (oneDNN 3x3) */
    char aggregation_conv1x1[32];        /* "auto" | "own" | "onednn" */
    char mixed_precision[16];          /* "auto" | "off" | "bf16" | "fp16" (auto: bf16 on CUDA) */
    int recompute_layers;              /* libtorch step: layers whose graph is rebuilt (0) */
    char checkpoint_metric[32];        /* "pck_img" | "pck_bbox" */

    /* ---- data ---- */
    char dataset[16];                  /* "spair" | "cub" */
    char data_root[DHF_CFG_STR];       /* dataset folder */
    char train_path[DHF_CFG_STR];      /* pair list JSON ("" = official trn split) */
    char val_path[DHF_CFG_STR];        /* pair list JSON ("" = val split subset) */
    char test_path[DHF_CFG_STR];       /* pair list JSON ("" = split below) */
    char split[16];                    /* "trn" | "val" | "test" */
    int pairs_per_category;            /* 0 = whole split */
    int64_t subset_seed;
    int val_pairs_per_category;        /* validation subset size (20) */
    char image_list[DHF_CFG_STR];      /* dhf extract: text file of image paths ("" = dataset) */

    /* ---- evaluation ---- */
    dhf_double_list alphas;            /* [0.01, 0.05, 0.10, 0.15] */
    char resize[16];                   /* "stretch" | "pad" */
    char matcher[32];                  /* "argmax" | "soft_argmax" | "window_soft_argmax" */
    double softmax_temperature;
    int window_radius;
    bool dump_predictions;

    /* ---- ViT baselines (dhf eval --provider dino | dinov2) ---- */
    char vit_dino_model[DHF_CFG_STR];   /* preset or folder with config.json */
    char vit_dino_weights[DHF_CFG_STR]; /* .pth / .safetensors */
    int vit_dino_layer;                 /* 0-based block (9) */
    int vit_dino_stride;                /* patch stride (4) */
    int vit_dino_load_size;             /* shorter side (224) */
    char vit_dinov2_model[DHF_CFG_STR];
    char vit_dinov2_weights[DHF_CFG_STR];
    int vit_dinov2_layer;               /* 11 */
    int vit_dinov2_load_size;           /* 840 */
    bool vit_dinov2_final_norm;         /* false: tokens before the final LayerNorm */

    /* ---- dhf table1 (the paper's Table 1 from one file) ---- */
    char t1_model_sd21[DHF_CFG_STR];   /* SD-2.1-base folder ("" = row not run) */
    char t1_cub_root[DHF_CFG_STR];     /* CUB-200-2011 folder ("" = no CUB column) */
    int t1_cub_pairs_per_category;     /* CUB test pairs drawn per class */
    char t1_test_pairs[DHF_CFG_STR];   /* SPair test pair list, or "full" */
    char t1_out_dir[DHF_CFG_STR];      /* "" = <output_dir>/table1 */
    char t1_checkpoint[8];             /* "best" | "last" */
    int t1_bootstrap;                  /* resamples of every interval */
    int64_t t1_bootstrap_seed;
    double t1_approx_points;           /* tolerance of the paper's "≈ d" relations */
} dhf_config;

typedef enum {
    DHF_CFG_T_BOOL, DHF_CFG_T_INT, DHF_CFG_T_INT64, DHF_CFG_T_DOUBLE,
    DHF_CFG_T_STRING, DHF_CFG_T_ENUM, DHF_CFG_T_INT_LIST, DHF_CFG_T_DOUBLE_LIST
} dhf_cfg_type;

typedef struct {
    const char *path;          /* key path, e.g. "lr" or "eval.alphas" */
    dhf_cfg_type type;
    size_t offset;             /* offsetof(dhf_config, field) */
    size_t size;               /* sizeof the field (string capacity) */
    const char *def;           /* default, as YAML text */
    double min, max;           /* numeric range (inclusive), list elements too */
    const char *choices;       /* enums: "a|b|c" */
    const char *section;       /* for docs grouping */
    const char *doc;
    bool min_exclusive;        /* range is (min, max]: e.g. lr must be > 0 */
} dhf_cfg_key;

extern const dhf_cfg_key dhf_config_keys[];   /* terminated by path == NULL */

void dhf_config_defaults(dhf_config *c);
/* Applies a YAML mapping file over *c. Unknown key, wrong type, out of range:
 * error "FILE:LINE:COL: key 'a.b': expected ..., got ...". The load, string and
 * set functions change *c only when they succeed. */
int dhf_config_load_file(dhf_config *c, const char *path);
/* Applies YAML text (`origin` names it in messages). */
int dhf_config_load_string(dhf_config *c, const char *yaml, const char *origin);
/* "a.b=value": value parsed as a YAML scalar or flow sequence ("[1, 2]");
 * messages start with "--set a.b=value". */
int dhf_config_set(dhf_config *c, const char *assignment);
/* Cross-field checks (e.g. save_timestep labels < num_timesteps). */
int dhf_config_validate(const dhf_config *c);
/* Fully resolved YAML (every key) to a stream / atomically to a file. */
int dhf_config_write_yaml(const dhf_config *c, FILE *f);
int dhf_config_save_yaml(const dhf_config *c, const char *path);
/* Writes <dir>/config.resolved.yaml. */
int dhf_config_write_resolved(const dhf_config *c, const char *dir);
/* Compact JSON object of every key (malloc'd string; free()). */
char *dhf_config_to_json(const dhf_config *c);
/* Markdown reference of every key (docs/CONFIG.md is generated from it). */
int dhf_config_write_docs(FILE *f);
const dhf_cfg_key *dhf_config_find_key(const char *path);
/* The position of s among the choices of the enum key `key` ("a|b|c": a = 0), the one
 * place a choice is spelled: code maps positions to its enums. -1 with a message
 * naming the key and its choices. */
int dhf_config_choice(const char *key, const char *s);

#endif

/* heatmap.h — the mixing-weight heatmap: softmax(mixing_weights) as a grid with rows
 * Layer 1..L and one column per saved timestep, each cell's value printed, a viridis
 * colour bar and a title. One cairo drawing function renders both a PNG and an SVG;
 * a CSV with the same numbers goes beside them (X.png -> X.svg, X.csv). Every file is
 * written atomically. Pure C (cairo), no libtorch: `dhf train` calls it at every
 * validation and `dhf heatmap` on a checkpoint.
 *
 * Columns are in storage order s (weights[s*L + l]) and labelled in the paper's
 * convention (log_aggregation_network in train_hyperfeatures.py): the labels are
 * save_timestep (reversed first when flip_timesteps is set, as its load_models does),
 * and reversed once more for diffusion_mode "inversion". With the default inversion
 * labels [49, 45, ..., 0] storage step 0 is the clean-image end of the inversion
 * and its column comes first, labelled 0. */
#ifndef DHF_TRAIN_HEATMAP_H
#define DHF_TRAIN_HEATMAP_H

#include <stdbool.h>
#include <stdint.h>

#include "core/config.h"

/* The PNG is rendered at this multiple of the SVG's pixel size (crisp text). */
#define DHF_HEATMAP_PNG_SCALE 2
#define DHF_HEATMAP_MAX_STEPS 64
#define DHF_HEATMAP_MAX_LAYERS 64

/* labels[s] for column s (see above). diffusion_mode: "inversion" | "generation". */
int dhf_heatmap_column_labels(const int64_t *save_timestep, int num_steps,
                              const char *diffusion_mode, bool flip_timesteps, int64_t *labels);

/* out = softmax(raw) over all n values (computed in double, rounded to float).
 * A non-finite input is an error. */
int dhf_heatmap_softmax(const float *raw, int n, float *out);

/* Size of the drawing in SVG pixels for S columns and L rows; the PNG is
 * DHF_HEATMAP_PNG_SCALE times as wide and high. Depends on S and L only. */
void dhf_heatmap_canvas_size(int num_steps, int num_layers, int *width, int *height);

/* Writes png_path (must end in ".png"), and the .svg and .csv beside it.
 * weights: softmaxed, [S*L], index s*L + l. labels: S column labels (as from
 * dhf_heatmap_column_labels). title: NULL -> "Mixing weights"; subtitle may be NULL.
 * CSV: header "layer,<label_0>,...,<label_S-1>", then L rows "<l+1>,<w>,..." with %.9g
 * (exact float round trip). */
int dhf_heatmap_write(const float *weights, int num_steps, int num_layers,
                      const int64_t *labels, const char *title, const char *subtitle,
                      const char *png_path);

/* What the trainer calls at every validation: labels from cfg (save_timestep,
 * diffusion_mode, flip_timesteps), title "Mixing weights: <run_name>", subtitle with
 * the step. weights as above, S = cfg->save_timestep.n. */
int dhf_heatmap_write_for_config(const float *weights, int num_layers, const dhf_config *cfg,
                                 int64_t step, const char *png_path);

/* `dhf heatmap`: reads "mixing_weights" [S*L] and the metadata of a checkpoint
 * (checkpoint.h), softmaxes, labels from its config, title "Mixing weights: <run>"
 * unless `title` is given. *num_steps / *num_layers (may be NULL) receive S and L. */
int dhf_heatmap_from_checkpoint(const char *ckpt_path, const char *title, const char *png_path,
                                int *num_steps, int *num_layers);

#endif

/* validate.c — PCK of the live network on the validation pairs (see validate.h). */
#include "train/validate.h"

#include <string.h>

#include "core/error.h"
#include "core/progress.h"
#include "eval/evaluate.h"
#include "train/hyperfeature_provider.h"

int dhf_train_validate(const dhf_dataset *val, const dhf_aggregator *a, dhf_runner *r,
                       dhf_agg_order order,
                       dhf_feature_cache *cache, dhf_device dev, const dhf_config *cfg,
                       dhf_val_result *out)
{
    memset(out, 0, sizeof *out);
    double t0 = dhf_now();
    dhf_eval_opts o;
    dhf_eval_opts_default(&o);
    o.match.load_size = cfg->load_resolution;
    if (dhf_resize_policy_parse(cfg->resize, &o.match.resize) != 0 ||
        dhf_matcher_parse(cfg->matcher, &o.match.matcher) != 0)
        return -1;
    o.match.temperature = cfg->softmax_temperature;
    o.match.window_radius = cfg->window_radius;
    o.n_alphas = 1;
    o.alphas[0] = cfg->pck_threshold;
    o.out_dir = NULL;
    o.dump_predictions = false;
    o.progress = false;

    dhf_provider prov;
    if (dhf_provider_hyperfeatures_live(a, r, order, cache, dev, "hyperfeatures", &prov) != 0)
        return -1;
    dhf_eval_result res;
    int rc = dhf_eval_run(val, &prov, &o, &res);
    dhf_provider_close(&prov);
    if (rc != 0)
        return dhf_err_wrap("validation");
    const dhf_pck_stats *st = &res.report.overall;
    out->pck_img = st->per_keypoint[DHF_PCK_IMG][0];
    out->pck_bbox = st->per_keypoint[DHF_PCK_BBOX][0];
    out->n_pairs = res.n_pairs;
    out->n_keypoints = st->n_keypoints;
    dhf_eval_result_free(&res);
    out->seconds = dhf_now() - t0;
    return 0;
}

double dhf_val_metric(const dhf_val_result *r, const char *metric)
{
    return strcmp(metric, "pck_img") == 0 ? r->pck_img : r->pck_bbox;
}

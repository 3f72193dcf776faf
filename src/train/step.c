/* step.c — loss, backward (the engine's, plain autograd or memory-lean autograd) and
 * AdamW for one pair (step.h). */
#include "train/step.h"

#include <math.h>
#include <string.h>

#include "core/clock.h"
#include "train/agg_engine.h"
#include "core/torch/shim_try.h"


int dhf_pair_loss(const dhf_aggregator *a, dhf_agg_order order, const dhf_tensor *feats,
                  const int64_t *src_idx, const int64_t *trg_idx, int K,
                  dhf_clip_loss_result *res)
{
    dhf_tensor desc = NULL, ds = NULL, dt = NULL;
    dhf_clip_loss_result r = { 0 };
    memset(res, 0, sizeof *res);
    dhf_scope_begin();
    if (dhf_aggregator_forward_order(a, feats, order, &desc))
        goto fail;
    if (dhf_size(desc, 0) != 2) {
        dhf_err_set("pair loss: expected features of 2 images (source, target), got %lld",
                    (long long)dhf_size(desc, 0));
        goto fail;
    }
    DHF_TRY(dhf_select(desc, 0, 0, &ds), "source descriptor");
    DHF_TRY(dhf_select(desc, 0, 1, &dt), "target descriptor");
    if (dhf_clip_loss(ds, dt, src_idx, trg_idx, K, &r))
        goto fail;
    /* dhf_clip_loss kept its handles into this scope: move them on to the caller */
    if (dhf_keep(r.loss) || dhf_keep(r.loss_src) || dhf_keep(r.loss_trg) ||
        dhf_keep(r.logits_src_rows) || dhf_keep(r.logits_trg_rows)) {
        dhf_err_set("pair loss: %s", dhf_last_error());
        goto fail;
    }
    dhf_scope_end();
    *res = r;
    return 0;
fail:
    dhf_scope_end();
    return -1;
}

static int loss_values(const dhf_clip_loss_result *r, dhf_step_stats *st)
{
    DHF_TRY(dhf_item_checked(r->loss, &st->loss), "loss value");
    DHF_TRY(dhf_item_checked(r->loss_src, &st->loss_src), "loss value");
    DHF_TRY(dhf_item_checked(r->loss_trg, &st->loss_trg), "loss value");
    return 0;
fail:
    return -1;
}

/* recompute[l] = 1 for the n layers with the cheapest forward (C_l h_l w_l: the 1x1
 * convolutions at native resolution; the rest costs the same in every layer). */
static void pick_recomputed(const dhf_aggregator *a, const dhf_tensor *feats, int n,
                            unsigned char *recompute)
{
    const int L = a->cfg.num_layers;
    memset(recompute, 0, (size_t)L);
    for (int k = 0; k < n && k < L; k++) {
        int best = -1;
        double best_cost = 0;
        for (int l = 0; l < L; l++) {
            double cost = (double)a->cfg.channels[l] * (double)dhf_size(feats[l], 3) *
                          (double)dhf_size(feats[l], 4);
            if (!recompute[l] && (best < 0 || cost < best_cost)) {
                best = l;
                best_cost = cost;
            }
        }
        if (best < 0)
            break;
        recompute[best] = 1;
    }
}

/* sum(contrib * G) -> backward: adds contrib's share of dloss/dparam to the grads. */
static int backward_through(dhf_tensor contrib, dhf_tensor G)
{
    dhf_tensor prod = NULL, s = NULL;
    DHF_TRY(dhf_mul(contrib, G, &prod), "contribution * dloss/ddesc");
    DHF_TRY(dhf_sum(prod, &s), "sum");
    dhf_free(prod);
    prod = NULL;
    DHF_TRY(dhf_backward(s), "backward of a layer");
    dhf_free(s);
    return 0;
fail:
    dhf_free(prod);
    dhf_free(s);
    return -1;
}

/* The loss of a descriptor leaf [B = 2, P, R, R] (requires_grad set here), its values
 * into *st (a non-finite loss is an error) and *G NEW = dloss/dleaf. Inside the
 * caller's scope. */
static int leaf_loss_grad(dhf_tensor leaf, const int64_t *ds4, const int64_t *src_idx,
                          const int64_t *trg_idx, int K, dhf_step_stats *st, dhf_tensor *G)
{
    dhf_tensor leaf4 = NULL, dsrc = NULL, dtrg = NULL;
    dhf_clip_loss_result r = { 0 };
    DHF_TRY(dhf_set_requires_grad(leaf, true), "descriptor leaf");
    DHF_TRY(dhf_reshape(leaf, ds4, 4, &leaf4), "descriptor [B, P, R, R]");
    DHF_TRY(dhf_select(leaf4, 0, 0, &dsrc), "source descriptor");
    DHF_TRY(dhf_select(leaf4, 0, 1, &dtrg), "target descriptor");
    if (dhf_clip_loss(dsrc, dtrg, src_idx, trg_idx, K, &r) || loss_values(&r, st))
        goto fail;
    if (!isfinite(st->loss)) {
        dhf_err_set("loss is %g (not finite)", st->loss);
        goto fail;
    }
    DHF_TRY(dhf_backward(r.loss), "backward of the loss");
    dhf_clip_loss_result_free(&r);
    DHF_TRY(dhf_grad(leaf, G), "dloss/ddesc");
    if (!*G)
        return dhf_err_set("dloss/ddesc: the descriptor got no gradient");
    return 0;
fail:
    dhf_clip_loss_result_free(&r);
    return -1;
}

/* Runs inside the caller's scope; see step.h. */
static int lean_backward(dhf_aggregator *a, const dhf_tensor *feats, const int64_t *src_idx,
                         const int64_t *trg_idx, int K, dhf_step_stats *st)
{
    const dhf_agg_config *c = &a->cfg;
    const int L = c->num_layers;
    unsigned char recompute[DHF_AGG_MAX_LAYERS];
    pick_recomputed(a, feats, c->recompute_layers, recompute);
    int64_t B = dhf_size(feats[0], 0);
    int64_t ds4[4] = { B, c->proj_dim, c->out_res, c->out_res };
    dhf_tensor w = NULL, wd = NULL, kept = NULL, dropped = NULL, total = NULL, G = NULL;
    bool prev = true;

    /* 1. descriptor: kept layers with their graphs, dropped layers without */
    DHF_TRY(dhf_softmax(a->mixing_weights, 0, &w), "softmax(mixing_weights)");
    DHF_TRY(dhf_detach(w, &wd), "softmax(mixing_weights)");
    for (int l = 0; l < L; l++) {
        dhf_tensor contrib = NULL;
        if (recompute[l]) {
            dhf_set_grad_enabled(false, &prev);
            int rc = dhf_aggregator_layer_forward(a, feats, l, DHF_AGG_FAST, wd, &contrib);
            dhf_status st2 = rc ? DHF_OK : dropped ? dhf_add_(dropped, contrib) : DHF_OK;
            dhf_set_grad_enabled(prev, NULL);
            if (rc)
                return -1;
            DHF_TRY(st2, "descriptor (recomputed layers)");
            if (!dropped)
                dropped = contrib;
            else
                dhf_free(contrib);
        } else {
            if (dhf_aggregator_layer_forward(a, feats, l, DHF_AGG_FAST, w, &contrib))
                return -1;
            if (!kept) {
                kept = contrib;
            } else {
                DHF_TRY(dhf_add_(kept, contrib), "descriptor (kept layers)");
                dhf_free(contrib);
            }
        }
    }

    st->seconds_forward = dhf_now();
    /* 2. loss on a leaf copy of the descriptor: G = dloss/ddesc */
    dhf_set_grad_enabled(false, &prev);
    dhf_status st1 = kept && dropped ? dhf_add(kept, dropped, &total)
                                     : dhf_clone(kept ? kept : dropped, &total);
    dhf_set_grad_enabled(prev, NULL);
    DHF_TRY(st1, "descriptor");
    if (leaf_loss_grad(total, ds4, src_idx, trg_idx, K, st, &G))
        return -1;

    /* 3. the kept graphs in one backward, then each dropped layer rebuilt and
     * back-propagated alone (its graph is freed before the next one is built) */
    if (kept && backward_through(kept, G))
        return -1;
    dhf_free(kept);
    kept = NULL;
    for (int l = 0; l < L; l++) {
        if (!recompute[l])
            continue;
        dhf_scope_begin();
        dhf_tensor wl = NULL, contrib = NULL;
        int rc = -1;
        if (dhf_softmax(a->mixing_weights, 0, &wl) != DHF_OK)
            dhf_err_set("softmax(mixing_weights): %s", dhf_last_error());
        else if (!dhf_aggregator_layer_forward(a, feats, l, DHF_AGG_FAST, wl, &contrib))
            rc = backward_through(contrib, G);
        dhf_scope_end();
        if (rc)
            return dhf_err_wrap("recomputed layer %d", l);
    }
    return 0;
fail:
    return -1;
}

/* The engine step's loss: between the engine's forward and backward, the loss and
 * its backward in libtorch on the descriptor as an autograd leaf: G = dloss/ddesc. */
typedef struct {
    dhf_tensor desc, G;
    const int64_t *ds4, *src_idx, *trg_idx;
    int K;
    dhf_step_stats *st;
} engine_loss_ctx;

static int engine_loss(void *ctx, const float **gdesc)
{
    engine_loss_ctx *c = ctx;
    c->st->seconds_forward = dhf_now();
    if (leaf_loss_grad(c->desc, c->ds4, c->src_idx, c->trg_idx, c->K, c->st, &c->G))
        return -1;
    if (!dhf_data_ptr(c->G))
        return dhf_err_set("dloss/ddesc: not a contiguous CPU tensor");
    *gdesc = (const float *)dhf_data_ptr(c->G);
    return 0;
}

/* Inside the caller's scope: the engine's forward into a leaf descriptor, the loss,
 * the engine's backward. */
static int engine_backward(dhf_aggregator *a, dhf_runner *r, const dhf_engine_net *net,
                           const dhf_tensor *feats, const int64_t *src_idx,
                           const int64_t *trg_idx, int K, dhf_step_stats *st)
{
    const dhf_agg_config *c = &a->cfg;
    int64_t ds4[4] = { dhf_size(feats[0], 0), c->proj_dim, c->out_res, c->out_res };
    engine_loss_ctx ctx = { .ds4 = ds4, .src_idx = src_idx, .trg_idx = trg_idx, .K = K,
                            .st = st };
    DHF_TRY(dhf_empty(DHF_F32, dhf_cpu_device(), ds4, 4, &ctx.desc), "descriptor");
    return dhf_runner_forward_backward(r, net, feats, (float *)dhf_data_ptr(ctx.desc),
                                       engine_loss, &ctx);
fail:
    return -1;
}

int dhf_pair_backward(dhf_aggregator *a, dhf_runner *r, dhf_agg_order order,
                      const dhf_tensor *feats, const int64_t *src_idx, const int64_t *trg_idx,
                      int K, dhf_step_stats *stats)
{
    dhf_step_stats st = { 0 };
    double t0 = dhf_now();
    if (dhf_aggregator_zero_grads(a))
        return -1;
    dhf_engine_net net;
    dhf_agg_engine_net(a, &net);
    bool engine = false;
    if (order == DHF_AGG_FAST && dhf_runner_use(r, &net, feats, &engine))
        return -1;
    if (engine) {
        if (!feats[0] || dhf_size(feats[0], 0) != 2)
            return dhf_err_set("pair backward: expected features of 2 images (source, target)");
        dhf_scope_begin();
        int rc = engine_backward(a, r, &net, feats, src_idx, trg_idx, K, &st);
        dhf_scope_end();
        if (rc) {
            dhf_aggregator_clear_grads(a);
            return dhf_err_wrap("oneDNN training step");
        }
    } else if (order == DHF_AGG_FAST && a->cfg.recompute_layers > 0) {
        int64_t B = 0;
        if (feats[0])
            B = dhf_size(feats[0], 0);
        if (B != 2)
            return dhf_err_set("pair backward: expected features of 2 images (source, target), "
                               "got %lld", (long long)B);
        dhf_scope_begin();
        int rc = lean_backward(a, feats, src_idx, trg_idx, K, &st);
        dhf_scope_end();
        if (rc) {
            dhf_aggregator_clear_grads(a);
            return dhf_err_wrap("memory-lean backward");
        }
    } else {
        dhf_clip_loss_result res = { 0 };
        if (dhf_pair_loss(a, order, feats, src_idx, trg_idx, K, &res))
            return -1;
        st.seconds_forward = dhf_now();
        if (loss_values(&res, &st))
            goto fail;
        if (!isfinite(st.loss)) {
            dhf_err_set("loss is %g (not finite)", st.loss);
            goto fail;
        }
        DHF_TRY(dhf_backward(res.loss), "backward");
        dhf_clip_loss_result_free(&res);
        goto done;
    fail:
        dhf_clip_loss_result_free(&res);
        dhf_aggregator_clear_grads(a);
        return -1;
    }
done:
    /* seconds_forward held the time stamp at the end of the forward */
    st.seconds_backward = dhf_now() - st.seconds_forward;
    st.seconds_forward -= t0;
    if (stats)
        *stats = st;
    return 0;
}

int dhf_train_step(dhf_aggregator *a, dhf_runner *r, dhf_agg_adamw *opt, dhf_agg_order order,
                   const dhf_tensor *feats, const int64_t *src_idx, const int64_t *trg_idx,
                   int K, dhf_step_stats *stats)
{
    dhf_step_stats st;
    if (dhf_pair_backward(a, r, order, feats, src_idx, trg_idx, K, &st))
        return dhf_err_wrap("training step %lld", (long long)opt->step + 1);
    if (dhf_agg_adamw_step(opt, a))
        return -1;
    if (stats)
        *stats = st;
    return 0;
}

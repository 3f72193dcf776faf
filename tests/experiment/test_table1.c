/* test_table1.c — dhf table1's planner and its rules, without running a stage: the
 * row, network and relation tables agree; the relations' hold rules on
 * hand-computed differences; the stages each selection of rows needs and their
 * order; which stages a record marks done, and which configuration changes make
 * which stages stale (a training key leaves the raw-feature rows and the caches
 * done; an evaluation key does not).
 * dhf-test: label=unit */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/tmpdir_util.h"
#include "core/config.h"
#include "core/error.h"
#include "core/fsutil.h"
#include "experiment/table1_internal.h"

static void test_tables_agree(void **state)
{
    (void)state;
    int rows = 0;
    for (const t1_row *r = t1_rows; r->id; r++, rows++) {
        assert_ptr_equal(t1_find_row(r->id), r);
        if (r->network)
            assert_non_null(t1_find_network(r->network));
        /* a row either names its provider or says why dhf cannot make it */
        assert_true((r->provider != NULL) != (r->unavailable != NULL));
    }
    assert_true(rows <= 32);   /* t1_plan.row_selected */
    for (const t1_relation *rel = t1_relations; rel->a; rel++) {
        assert_non_null(t1_find_row(rel->a));
        assert_non_null(t1_find_row(rel->b));
    }
    /* the paper's figures as printed in its Table 1 */
    const t1_row *ours = t1_find_row("ours"), *dino = t1_find_row("dino");
    assert_true(ours->paper[0] == 72.56 && ours->paper[1] == 64.61 && ours->paper[2] == 82.29);
    assert_true(dino->paper[0] == 51.68 && dino->paper[1] == 41.04);
}

static void test_relation_rules(void **state)
{
    (void)state;
    t1_relation approx = {"ours", "sd-layer-4", T1_REL_APPROX, 14, "x"};
    assert_true(t1_relation_holds(&approx, 14.0, 3));
    assert_true(t1_relation_holds(&approx, 11.0, 3));    /* |11 - 14| = 3 <= 3 */
    assert_true(t1_relation_holds(&approx, 17.0, 3));
    assert_false(t1_relation_holds(&approx, 10.99, 3));
    assert_false(t1_relation_holds(&approx, -14.0, 3));
    t1_relation ge = {"ours", "ours-one-step", T1_REL_AT_LEAST, 5, "x"};
    assert_true(t1_relation_holds(&ge, 5.0, 3));
    assert_true(t1_relation_holds(&ge, 20.0, 3));
    assert_false(t1_relation_holds(&ge, 4.99, 3));        /* no tolerance on "≥" */
    t1_relation above = {"sd-layer-4", "sd-concat-all", T1_REL_ABOVE, 0, "x"};
    assert_false(t1_relation_holds(&above, 0.0, 3));
    assert_true(t1_relation_holds(&above, 0.01, 3));
    assert_false(t1_relation_holds(&above, -1.05, 3));
}

typedef struct {
    char *dir;
    dhf_config cfg;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (!f || !(f->dir = tmp_make_dir("table1")))
        return -1;
    dhf_config_defaults(&f->cfg);
    snprintf(f->cfg.t1_out_dir, sizeof f->cfg.t1_out_dir, "%s/out", f->dir);
    snprintf(f->cfg.t1_model_sd21, sizeof f->cfg.t1_model_sd21, "models/sd21");
    snprintf(f->cfg.model_id, sizeof f->cfg.model_id, "models/sd15");
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    dhf_remove_tree(f->dir);
    free(f->dir);
    free(f);
    return 0;
}

static int count(const t1_plan *p, t1_kind kind)
{
    int n = 0;
    for (int i = 0; i < p->n; i++)
        n += p->stages[i].kind == kind;
    return n;
}

static t1_stage *stage(t1_plan *p, const char *id)
{
    for (int i = 0; i < p->n; i++)
        if (strcmp(p->stages[i].id, id) == 0)
            return &p->stages[i];
    fail_msg("no stage %s", id);
    return NULL;
}

static void test_plan_stages(void **state)
{
    fixture *f = *state;
    t1_plan p;
    /* every row, both datasets: 3 caches x {trn, val, test} on SPair + 3 CUB test; 3
     * trainings; 7 rows x 2 evaluations */
    assert_int_equal(t1_plan_build(&p, &f->cfg, NULL), 0);
    assert_int_equal(count(&p, T1_EXTRACT), 12);
    assert_int_equal(count(&p, T1_TRAIN), 3);
    assert_int_equal(count(&p, T1_EVAL), 14);
    /* ordered extract -> train -> eval; an evaluation points at its network's stage */
    for (int i = 1; i < p.n; i++)
        assert_true(p.stages[i - 1].kind <= p.stages[i].kind);
    t1_stage *e = stage(&p, "eval-ours-pruned-spair");
    assert_string_equal(p.stages[e->network_stage].id, "train-ours");
    assert_string_equal(e->cfg.split, "test");
    assert_int_equal(e->network_stage >= 0, 1);
    /* nothing exists yet: all to do */
    for (int i = 0; i < p.n; i++)
        assert_int_equal(p.stages[i].state, T1_TODO);
    /* the one-step rows read a one-step cache of their own; SD-2.1 its own model */
    t1_stage *l4 = stage(&p, "eval-sd-layer-4-spair"), *ours = stage(&p, "eval-ours-spair");
    assert_int_equal(l4->cfg.num_timesteps, 1);
    assert_int_equal(l4->cfg.save_timestep.n, 1);
    assert_int_equal(ours->cfg.save_timestep.n, 11);
    assert_string_not_equal(l4->cfg.cache_path, ours->cfg.cache_path);
    assert_string_equal(stage(&p, "extract-sd21-multi-step-spair-trn")->cfg.model_id, "models/sd21");
    /* the CUB column reads the CUB folder; SPair the 360-pair list */
    t1_stage *cub = stage(&p, "eval-ours-cub");
    assert_string_equal(cub->cfg.dataset, "cub");
    assert_string_equal(cub->cfg.data_root, f->cfg.t1_cub_root);
    assert_int_equal(cub->cfg.pairs_per_category, 10);
    assert_string_equal(ours->cfg.test_path, "data/dhf-annotations/spair_71k_test-360.json");
    /* the stages never see the table1.* keys */
    assert_string_equal(ours->cfg.t1_out_dir, "");
    t1_plan_free(&p);

    /* --rows: only what those rows need; no SD-2.1 model or CUB folder: fewer */
    assert_int_equal(t1_plan_build(&p, &f->cfg, "sd-layer-4"), 0);
    assert_int_equal(p.n, 4);   /* extract + eval, SPair and CUB */
    t1_plan_free(&p);
    f->cfg.t1_model_sd21[0] = '\0';
    f->cfg.t1_cub_root[0] = '\0';
    assert_int_equal(t1_plan_build(&p, &f->cfg, NULL), 0);
    assert_int_equal(count(&p, T1_TRAIN), 2);
    assert_int_equal(count(&p, T1_EVAL), 6);
    t1_plan_free(&p);
    /* DINO without weights has no stages; an unknown row is a usage error naming the rows */
    assert_int_equal(t1_plan_build(&p, &f->cfg, "dino"), 0);
    assert_int_equal(p.n, 0);
    t1_plan_free(&p);
    /* with a model folder: one evaluation per dataset, no cache, no training */
    f->cfg.t1_cub_root[0] = '\0';
    snprintf(f->cfg.vit_dino_model, sizeof f->cfg.vit_dino_model, "%s", f->dir);
    assert_int_equal(t1_plan_build(&p, &f->cfg, "dino"), 0);
    assert_int_equal(p.n, 1);
    assert_int_equal(p.stages[0].kind, T1_EVAL);
    assert_string_equal(p.stages[0].cfg.cache_path, "");
    t1_plan_free(&p);
    assert_int_equal(t1_plan_build(&p, &f->cfg, "ours,typo"), -2);
    assert_non_null(strstr(dhf_err_msg(), "unknown row 'typo'"));
    assert_non_null(strstr(dhf_err_msg(), "sd-layer-pruned"));
    t1_plan_free(&p);
}

/* Writes the stage's "done" record by hand, as a finished run leaves it. */
static void mark_done(const t1_plan *p, const t1_stage *s)
{
    char path[4400];
    assert_int_equal(dhf_mkdir_p(p->stage_dir), 0);
    snprintf(path, sizeof path, "%s/%s.json", p->stage_dir, s->id);
    char text[256];
    snprintf(text, sizeof text, "{\"id\": \"%s\", \"state\": \"done\", \"recipe\": \"%s\"}", s->id,
             s->recipe);
    assert_int_equal(dhf_write_file_atomic(path, text, strlen(text)), 0);
}

static void touch(const char *path)
{
    char dir[4400];
    snprintf(dir, sizeof dir, "%s", path);
    *strrchr(dir, '/') = '\0';
    assert_int_equal(dhf_mkdir_p(dir), 0);
    assert_int_equal(dhf_write_file_atomic(path, "x", 1), 0);
}

static void test_done_and_stale(void **state)
{
    fixture *f = *state;
    t1_plan p;
    assert_int_equal(t1_plan_build(&p, &f->cfg, "sd-layer-4"), 0);
    t1_stage *x = stage(&p, "extract-sd15-one-step-spair-test");
    t1_stage *e = stage(&p, "eval-sd-layer-4-spair");
    /* a record without the output is not done */
    mark_done(&p, x);
    assert_int_equal(t1_stage_refresh(&p, x), 0);
    assert_int_equal(x->state, T1_TODO);
    touch(x->output);
    assert_int_equal(t1_stage_refresh(&p, x), 0);
    assert_int_equal(x->state, T1_DONE);
    char a[4400], b[4400];
    snprintf(a, sizeof a, "%s/results.json", e->output);
    snprintf(b, sizeof b, "%s/predictions.jsonl", e->output);
    touch(a);
    touch(b);
    mark_done(&p, e);
    assert_int_equal(t1_stage_refresh(&p, e), 0);
    assert_int_equal(e->state, T1_DONE);
    t1_plan_free(&p);

    /* a training key and the thread count change nothing here */
    dhf_config c = f->cfg;
    c.lr = 5e-4;
    c.threads = 7;
    c.t1_bootstrap = 17;
    assert_int_equal(t1_plan_build(&p, &c, "sd-layer-4"), 0);
    assert_int_equal(stage(&p, "extract-sd15-one-step-spair-test")->state, T1_DONE);
    assert_int_equal(stage(&p, "eval-sd-layer-4-spair")->state, T1_DONE);
    t1_plan_free(&p);
    /* an evaluation key makes the evaluation stale, not the features */
    c = f->cfg;
    snprintf(c.matcher, sizeof c.matcher, "soft_argmax");
    assert_int_equal(t1_plan_build(&p, &c, "sd-layer-4"), 0);
    assert_int_equal(stage(&p, "extract-sd15-one-step-spair-test")->state, T1_DONE);
    assert_int_equal(stage(&p, "eval-sd-layer-4-spair")->state, T1_TODO);
    t1_plan_free(&p);
    /* a ViT key leaves the diffusion rows done */
    c = f->cfg;
    c.vit_dino_layer = 8;
    c.vit_dinov2_load_size = 224;
    assert_int_equal(t1_plan_build(&p, &c, "sd-layer-4"), 0);
    assert_int_equal(stage(&p, "eval-sd-layer-4-spair")->state, T1_DONE);
    t1_plan_free(&p);
    /* an extraction key gives another cache file, to do */
    c = f->cfg;
    c.diffusion_resolution = 256;
    assert_int_equal(t1_plan_build(&p, &c, "sd-layer-4"), 0);
    x = stage(&p, "extract-sd15-one-step-spair-test");
    assert_int_equal(x->state, T1_TODO);
    assert_false(dhf_path_exists(x->output));
    t1_plan_free(&p);

    /* a training stage: a run folder without a record is another configuration's
     * run (redo); a "running" record of the same recipe resumes */
    assert_int_equal(t1_plan_build(&p, &f->cfg, "ours"), 0);
    t1_stage *t = stage(&p, "train-ours");
    assert_int_equal(t->state, T1_TODO);
    assert_int_equal(dhf_mkdir_p(t->output), 0);
    assert_int_equal(t1_stage_refresh(&p, t), 0);
    assert_int_equal(t->state, T1_STALE);
    char path[4400], text[256];
    snprintf(path, sizeof path, "%s/%s.json", p.stage_dir, t->id);
    snprintf(text, sizeof text, "{\"state\": \"running\", \"recipe\": \"%s\"}", t->recipe);
    assert_int_equal(dhf_write_file_atomic(path, text, strlen(text)), 0);
    assert_int_equal(t1_stage_refresh(&p, t), 0);
    assert_int_equal(t->state, T1_RESUME);
    /* its evaluations wait for the checkpoint */
    assert_int_equal(stage(&p, "eval-ours-spair")->state, T1_TODO);
    t1_plan_free(&p);
    /* the same record under another training configuration: redo */
    c = f->cfg;
    c.lr = 5e-4;
    assert_int_equal(t1_plan_build(&p, &c, "ours"), 0);
    assert_int_equal(stage(&p, "train-ours")->state, T1_STALE);
    t1_plan_free(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tables_agree),
        cmocka_unit_test(test_relation_rules),
        cmocka_unit_test_setup_teardown(test_plan_stages, setup, teardown),
        cmocka_unit_test_setup_teardown(test_done_and_stale, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

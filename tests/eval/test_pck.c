/* test_pck.c — PCK@α against the hand-computed fixture cases
 * (../shared/fixtures/pck/pck_cases.json, or another file with the same schema
 * given as argv[1]) and against our own hand-computed cases: a distance exactly
 * at α·max, anisotropic images, a box much smaller than the image, a
 * one-keypoint pair, invisible keypoints, a padded-resize case, and the
 * per-category / breakdown averages.
 * dhf-test: label=unit */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "core/error.h"
#include "core/fsutil.h"
#include "eval/evaluate.h"
#include "eval/match.h"
#include "eval/pck.h"

#define FIXTURE_DIR "../shared/fixtures"
#define DEFAULT_CASES FIXTURE_DIR "/pck/pck_cases.json"

static const char *g_cases_path = DEFAULT_CASES;
static int g_fixture_skipped;

/* ---- the cases-file checker -------------------------------------------------- */

/* Everything a case checker found wrong, printed at the end. */
typedef struct {
    int n_fail;
    int n_checks;
    const char *file;
} checker;

static void mismatch(checker *ck, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fflush(stdout);
    fprintf(stderr, "  MISMATCH %s: ", ck->file);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    ck->n_fail++;
}

static bool close_to(double got, double want)
{
    if (isnan(want))
        return isnan(got);
    return fabs(got - want) <= 1e-12 * fmax(1.0, fabs(want));
}

static void expect_close(checker *ck, double got, double want, const char *what, const char *case_name)
{
    ck->n_checks++;
    if (!close_to(got, want))
        mismatch(ck, "case '%s': %s = %.17g, expected %.17g", case_name, what, got, want);
}

/* Finds the value for alpha in an {"<alpha>": v} object: the key whose number
 * equals alpha (Python writes repr(alpha), we do not depend on the spelling). */
static const cJSON *alpha_entry(const cJSON *obj, double alpha)
{
    const cJSON *it;
    cJSON_ArrayForEach(it, obj)
    {
        if (it->string && strtod(it->string, NULL) == alpha)
            return it;
    }
    return NULL;
}

/* The first of two spellings present in obj (schemas in the wild vary). */
static const cJSON *first_of(const cJSON *obj, const char *a, const char *b)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, a);
    return v ? v : cJSON_GetObjectItemCaseSensitive(obj, b);
}

static int read_xy_list(const cJSON *arr, double **xy, int *n, const char *what, const char *case_name)
{
    if (!cJSON_IsArray(arr))
        return dhf_err_set("case '%s': field '%s': expected an array of [x, y]", case_name, what);
    int count = cJSON_GetArraySize(arr);
    *xy = calloc((size_t)(count > 0 ? count : 1) * 2, sizeof(double));
    *n = count;
    for (int i = 0; i < count; i++) {
        const cJSON *p = cJSON_GetArrayItem(arr, i);
        if (!cJSON_IsArray(p) || cJSON_GetArraySize(p) != 2 || !cJSON_IsNumber(cJSON_GetArrayItem(p, 0)) ||
            !cJSON_IsNumber(cJSON_GetArrayItem(p, 1)))
            return dhf_err_set("case '%s': field '%s'[%d]: expected [x, y] numbers", case_name, what, i);
        (*xy)[2 * i] = cJSON_GetArrayItem(p, 0)->valuedouble;
        (*xy)[2 * i + 1] = cJSON_GetArrayItem(p, 1)->valuedouble;
    }
    return 0;
}

static int read_numbers(const cJSON *arr, double *out, int n, const char *what, const char *case_name)
{
    if (!cJSON_IsArray(arr) || cJSON_GetArraySize(arr) != n)
        return dhf_err_set("case '%s': field '%s': expected an array of %d numbers", case_name, what, n);
    for (int i = 0; i < n; i++) {
        const cJSON *v = cJSON_GetArrayItem(arr, i);
        if (!cJSON_IsNumber(v))
            return dhf_err_set("case '%s': field '%s'[%d]: expected a number", case_name, what, i);
        out[i] = v->valuedouble;
    }
    return 0;
}

static int read_alphas(const cJSON *arr, double *alphas, int *n, const char *where)
{
    if (!cJSON_IsArray(arr) || cJSON_GetArraySize(arr) < 1 || cJSON_GetArraySize(arr) > DHF_PCK_MAX_ALPHAS)
        return dhf_err_set("%s: field 'alphas': expected 1..%d numbers", where, DHF_PCK_MAX_ALPHAS);
    *n = cJSON_GetArraySize(arr);
    return read_numbers(arr, alphas, *n, "alphas", where);
}

/* Keypoints of all cases, for the file-level aggregate. */
typedef struct {
    dhf_pck_kp *kps;
    size_t n, cap;
    int n_pairs;
    bool no_bbox;    /* some pair of the current case has no target_bbox */
} kp_list;

static void kp_push(kp_list *l, const dhf_pck_kp *kp)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 64;
        l->kps = realloc(l->kps, l->cap * sizeof *l->kps);
        assert_non_null(l->kps);
    }
    l->kps[l->n++] = *kp;
}

/* One pair of a case (a case is one pair, or has "pairs": [...] of them). */
static int load_case_pair(const cJSON *pobj, const char *case_name, int pair_index, int category,
                          kp_list *out)
{
    double size[2] = {0, 0}, bbox[4] = {0, 0, 0, 0};
    /* A case without a box judges img thresholds only (its bbox size stands in
     * as the image's, and check_kind refuses bbox expectations for it). */
    const cJSON *box = cJSON_GetObjectItemCaseSensitive(pobj, "target_bbox");
    if (read_numbers(cJSON_GetObjectItemCaseSensitive(pobj, "target_size"), size, 2, "target_size", case_name) ||
        (box && read_numbers(box, bbox, 4, "target_bbox", case_name)))
        return -1;
    if (!box) {
        bbox[2] = size[0];
        bbox[3] = size[1];
        out->no_bbox = true;
    }
    double *gt = NULL, *pred = NULL;
    int n_gt = 0, n_pred = 0;
    if (read_xy_list(cJSON_GetObjectItemCaseSensitive(pobj, "gt_target_kps"), &gt, &n_gt, "gt_target_kps",
                     case_name) ||
        read_xy_list(cJSON_GetObjectItemCaseSensitive(pobj, "pred_target_kps"), &pred, &n_pred,
                     "pred_target_kps", case_name)) {
        free(gt), free(pred);
        return -1;
    }
    if (n_gt != n_pred) {
        free(gt), free(pred);
        return dhf_err_set("case '%s': %d ground-truth but %d predicted keypoints", case_name, n_gt, n_pred);
    }
    /* Optional extension (our own cases): "visible": [0/1, ...] — invisible
     * keypoints are not judged at all, as the evaluator does. */
    const cJSON *vis = cJSON_GetObjectItemCaseSensitive(pobj, "visible");
    for (int i = 0; i < n_gt; i++) {
        if (cJSON_IsArray(vis) && !cJSON_IsTrue(cJSON_GetArrayItem(vis, i)) &&
            !(cJSON_IsNumber(cJSON_GetArrayItem(vis, i)) && cJSON_GetArrayItem(vis, i)->valuedouble != 0))
            continue;
        dhf_pck_kp kp = {.pair = pair_index, .category = category};
        kp.gt[0] = gt[2 * i], kp.gt[1] = gt[2 * i + 1];
        kp.pred[0] = pred[2 * i], kp.pred[1] = pred[2 * i + 1];
        kp.size[DHF_PCK_IMG] = dhf_pck_img_size(size[0], size[1]);
        kp.size[DHF_PCK_BBOX] = dhf_pck_bbox_size(bbox[0], bbox[1], bbox[2], bbox[3]);
        for (int a = 0; a < DHF_PCK_NATTRS; a++)
            kp.attr[a] = -1;
        kp_push(out, &kp);
    }
    free(gt), free(pred);
    return 0;
}

static void check_kind(checker *ck, const cJSON *exp, const char *kind_name, int kind, const char *case_name,
                       const kp_list *kl, size_t first, int n_pairs_case, const dhf_pck_report *rep)
{
    const cJSON *ek = cJSON_GetObjectItemCaseSensitive(exp, kind_name);
    if (!ek)
        return;
    char what[128];
    size_t nk = kl->n - first;
    if (kind == DHF_PCK_BBOX && kl->no_bbox) {
        mismatch(ck, "case '%s': expects bbox results but has no target_bbox", case_name);
        return;
    }
    for (int a = 0; a < rep->n_alphas; a++) {
        double alpha = rep->alphas[a];
        const dhf_pck_kp *k0 = &kl->kps[first];
        if (n_pairs_case == 1 && nk > 0) {
            const cJSON *sz = cJSON_GetObjectItemCaseSensitive(ek, "size");
            if (cJSON_IsNumber(sz)) {
                snprintf(what, sizeof what, "%s size", kind_name);
                expect_close(ck, k0->size[kind], sz->valuedouble, what, case_name);
            }
            const cJSON *thr = alpha_entry(cJSON_GetObjectItemCaseSensitive(ek, "threshold"), alpha);
            if (cJSON_IsNumber(thr)) {
                snprintf(what, sizeof what, "%s threshold@%g", kind_name, alpha);
                expect_close(ck, dhf_pck_threshold(alpha, k0->size[kind]), thr->valuedouble, what, case_name);
            }
        }
        const cJSON *corr = alpha_entry(cJSON_GetObjectItemCaseSensitive(ek, "correct"), alpha);
        if (corr) {
            ck->n_checks++;
            if (!cJSON_IsArray(corr) || (size_t)cJSON_GetArraySize(corr) != nk)
                mismatch(ck, "case '%s': %s correct@%g: expected %zu flags in the file", case_name, kind_name,
                         alpha, nk);
            else
                for (size_t i = 0; i < nk; i++) {
                    const dhf_pck_kp *kp = &kl->kps[first + i];
                    double d = dhf_pck_distance(kp->pred, kp->gt);
                    bool got = dhf_pck_correct(d, alpha, kp->size[kind]);
                    const cJSON *flag = cJSON_GetArrayItem(corr, (int)i);
                    bool want = cJSON_IsTrue(flag) || (cJSON_IsNumber(flag) && flag->valuedouble != 0);
                    if (got != want)
                        mismatch(ck, "case '%s': %s correct@%g[%zu] = %d, expected %d (distance %.17g, "
                                     "threshold %.17g)",
                                 case_name, kind_name, alpha, i, got, want, d,
                                 dhf_pck_threshold(alpha, kp->size[kind]));
                }
        }
        const cJSON *nc = alpha_entry(cJSON_GetObjectItemCaseSensitive(ek, "n_correct"), alpha);
        if (cJSON_IsNumber(nc)) {
            ck->n_checks++;
            if (rep->overall.n_correct[kind][a] != (long)nc->valuedouble)
                mismatch(ck, "case '%s': %s n_correct@%g = %ld, expected %ld", case_name, kind_name, alpha,
                         rep->overall.n_correct[kind][a], (long)nc->valuedouble);
        }
        const cJSON *pck = alpha_entry(cJSON_GetObjectItemCaseSensitive(ek, "pck"), alpha);
        if (cJSON_IsNumber(pck)) {
            snprintf(what, sizeof what, "%s pck@%g (pooled)", kind_name, alpha);
            expect_close(ck, rep->overall.per_keypoint[kind][a], pck->valuedouble, what, case_name);
        }
        const cJSON *pim = alpha_entry(first_of(ek, "per_image_mean", "per_image"), alpha);
        if (cJSON_IsNumber(pim)) {
            snprintf(what, sizeof what, "%s per_image_mean@%g", kind_name, alpha);
            expect_close(ck, rep->overall.per_image[kind][a], pim->valuedouble, what, case_name);
        }
    }
}

static void check_aggregate(checker *ck, const cJSON *agg, const dhf_pck_report *rep)
{
    for (int kind = 0; kind < DHF_PCK_NKINDS; kind++) {
        const cJSON *ek = cJSON_GetObjectItemCaseSensitive(agg, dhf_pck_kind_names[kind]);
        if (!ek)
            continue;
        char what[128];
        for (int a = 0; a < rep->n_alphas; a++) {
            double alpha = rep->alphas[a];
            const cJSON *v = alpha_entry(first_of(ek, "pooled_per_keypoint", "per_keypoint"), alpha);
            if (cJSON_IsNumber(v)) {
                snprintf(what, sizeof what, "%s pooled_per_keypoint@%g", dhf_pck_kind_names[kind], alpha);
                expect_close(ck, rep->overall.per_keypoint[kind][a], v->valuedouble, what, "(aggregate)");
            }
            v = alpha_entry(first_of(ek, "per_image_mean", "per_image"), alpha);
            if (cJSON_IsNumber(v)) {
                snprintf(what, sizeof what, "%s per_image_mean@%g", dhf_pck_kind_names[kind], alpha);
                expect_close(ck, rep->overall.per_image[kind][a], v->valuedouble, what, "(aggregate)");
            }
            v = alpha_entry(cJSON_GetObjectItemCaseSensitive(ek, "pooled_counts"), alpha);
            if (cJSON_IsArray(v) && cJSON_GetArraySize(v) == 2) {
                ck->n_checks++;
                long want_c = (long)cJSON_GetArrayItem(v, 0)->valuedouble;
                long want_n = (long)cJSON_GetArrayItem(v, 1)->valuedouble;
                if (rep->overall.n_correct[kind][a] != want_c || rep->overall.n_keypoints != want_n)
                    mismatch(ck, "(aggregate) %s pooled_counts@%g = [%ld, %ld], expected [%ld, %ld]",
                             dhf_pck_kind_names[kind], alpha, rep->overall.n_correct[kind][a],
                             rep->overall.n_keypoints, want_c, want_n);
            }
        }
    }
}

/* Runs every case of a cases document. Returns the number of mismatches (or
 * -1 for a malformed document, message set). */
static int check_cases_text(const char *text, const char *file, int *n_cases_out)
{
    checker ck = {.file = file};
    cJSON *doc = cJSON_Parse(text);
    if (!doc)
        return dhf_err_set("%s: not valid JSON (near '%.20s')", file, cJSON_GetErrorPtr() ? cJSON_GetErrorPtr() : "");
    double file_alphas[DHF_PCK_MAX_ALPHAS];
    int n_file_alphas = 0;
    const cJSON *fa = cJSON_GetObjectItemCaseSensitive(doc, "alphas");
    if (fa && read_alphas(fa, file_alphas, &n_file_alphas, file) != 0)
        goto bad;
    const cJSON *cases = cJSON_GetObjectItemCaseSensitive(doc, "cases");
    if (!cJSON_IsArray(cases) || cJSON_GetArraySize(cases) == 0) {
        dhf_err_set("%s: field 'cases': expected a non-empty array", file);
        goto bad;
    }
    kp_list all = {0};
    int n_case_names = cJSON_GetArraySize(cases);
    const char **names = calloc((size_t)n_case_names, sizeof *names);
    int ci = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, cases)
    {
        const cJSON *nm = cJSON_GetObjectItemCaseSensitive(c, "name");
        char fallback[32];
        snprintf(fallback, sizeof fallback, "#%d", ci);
        const char *case_name = cJSON_IsString(nm) ? nm->valuestring : fallback;
        names[ci] = cJSON_IsString(nm) ? nm->valuestring : "case";
        double alphas[DHF_PCK_MAX_ALPHAS];
        int n_alphas = n_file_alphas;
        memcpy(alphas, file_alphas, sizeof alphas);
        const cJSON *ca = cJSON_GetObjectItemCaseSensitive(c, "alphas");
        if (ca && read_alphas(ca, alphas, &n_alphas, case_name) != 0)
            goto bad_cases;
        if (n_alphas == 0) {
            dhf_err_set("case '%s': no 'alphas' in the case or the file", case_name);
            goto bad_cases;
        }
        size_t first = all.n;
        int first_pair = all.n_pairs;
        all.no_bbox = false;
        const cJSON *pairs = cJSON_GetObjectItemCaseSensitive(c, "pairs");
        if (cJSON_IsArray(pairs)) {
            const cJSON *p;
            cJSON_ArrayForEach(p, pairs)
            {
                if (load_case_pair(p, case_name, all.n_pairs++, ci, &all) != 0)
                    goto bad_cases;
            }
        } else if (load_case_pair(c, case_name, all.n_pairs++, ci, &all) != 0) {
            goto bad_cases;
        }
        int n_pairs_case = all.n_pairs - first_pair;

        /* The case on its own. */
        size_t nk = all.n - first;
        dhf_pck_kp *local = malloc((nk ? nk : 1) * sizeof *local);
        for (size_t i = 0; i < nk; i++) {
            local[i] = all.kps[first + i];
            local[i].pair -= first_pair;
            local[i].category = 0;
        }
        const char *cat0 = "case";
        dhf_pck_report rep;
        int rc = dhf_pck_compute(local, nk, n_pairs_case, &cat0, 1, alphas, n_alphas, &rep);
        free(local);
        if (rc != 0)
            goto bad_cases;

        const cJSON *exp = cJSON_GetObjectItemCaseSensitive(c, "expected");
        if (!cJSON_IsObject(exp)) {
            dhf_pck_report_free(&rep);
            dhf_err_set("case '%s': field 'expected': expected an object", case_name);
            goto bad_cases;
        }
        const cJSON *nkp = cJSON_GetObjectItemCaseSensitive(exp, "n_keypoints");
        if (cJSON_IsNumber(nkp)) {
            ck.n_checks++;
            if ((long)nk != (long)nkp->valuedouble)
                mismatch(&ck, "case '%s': n_keypoints = %zu, expected %ld", case_name, nk, (long)nkp->valuedouble);
        }
        const cJSON *dist = cJSON_GetObjectItemCaseSensitive(exp, "distances");
        if (cJSON_IsArray(dist)) {
            ck.n_checks++;
            if ((size_t)cJSON_GetArraySize(dist) != nk)
                mismatch(&ck, "case '%s': %zu keypoints but %d expected distances", case_name, nk,
                         cJSON_GetArraySize(dist));
            else
                for (size_t i = 0; i < nk; i++) {
                    char what[64];
                    snprintf(what, sizeof what, "distance[%zu]", i);
                    expect_close(&ck, dhf_pck_distance(all.kps[first + i].pred, all.kps[first + i].gt),
                                 cJSON_GetArrayItem(dist, (int)i)->valuedouble, what, case_name);
                }
        }
        for (int kind = 0; kind < DHF_PCK_NKINDS; kind++)
            check_kind(&ck, exp, dhf_pck_kind_names[kind], kind, case_name, &all, first, n_pairs_case, &rep);
        /* Cases whose verdict depends on the exact double arithmetic: they
         * are checked above like every other flag; list them so a failure
         * there is recognisable. */
        const cJSON *ps = cJSON_GetObjectItemCaseSensitive(exp, "precision_sensitive");
        if (cJSON_IsArray(ps) && cJSON_GetArraySize(ps) > 0) {
            char *t = cJSON_PrintUnformatted(ps);
            printf("  note: case '%s' precision_sensitive: %s\n", case_name, t ? t : "?");
            free(t);
        }
        dhf_pck_report_free(&rep);
        ci++;
    }

    const cJSON *agg = cJSON_GetObjectItemCaseSensitive(doc, "aggregate");
    if (agg && n_file_alphas > 0) {
        dhf_pck_report rep;
        if (dhf_pck_compute(all.kps, all.n, all.n_pairs, names, ci, file_alphas, n_file_alphas, &rep) != 0)
            goto bad_cases;
        check_aggregate(&ck, agg, &rep);
        dhf_pck_report_free(&rep);
    }
    printf("  %s: %d cases, %d checks, %d mismatches\n", file, ci, ck.n_checks, ck.n_fail);
    free(names);
    free(all.kps);
    cJSON_Delete(doc);
    if (n_cases_out)
        *n_cases_out = ci;
    return ck.n_fail;

bad_cases:
    free(names);
    free(all.kps);
bad:
    cJSON_Delete(doc);
    return -1;
}

/* ---- tests -------------------------------------------------------------------- */

static void test_fixture_cases(void **state)
{
    (void)state;
    if (g_fixture_skipped)
        skip();
    char *text = NULL;
    if (dhf_read_file(g_cases_path, &text, NULL) != 0)
        fail_msg("cannot read the PCK cases file %s: %s", g_cases_path, dhf_err_msg());
    int n_cases = 0;
    int rc = check_cases_text(text, g_cases_path, &n_cases);
    free(text);
    if (rc < 0)
        fail_msg("%s", dhf_err_msg());
    assert_int_equal(rc, 0);
    assert_true(n_cases > 0);
}

/* Our own cases, in the fixture's schema (hand-computed; see each "hand_check").
 * "visible" is an optional extension: 0 = not judged. */
static const char *own_cases =
    "{\"alphas\": [0.05, 0.1, 0.15], \"cases\": ["
    /* 1. exactly at α·max(W,H) for every α, anisotropic 400x100: thresholds 20, 40, 60. */
    "{\"name\": \"at_alpha_max_anisotropic\","
    " \"hand_check\": \"img size max(400,100)=400 -> 20,40,60; bbox [0,0,400,100] -> 400 same. d = 20 (dx), 40 (dy), 60 (36,48)\","
    " \"target_size\": [400, 100], \"target_bbox\": [0, 0, 400, 100],"
    " \"gt_target_kps\": [[100, 50], [200, 10], [300, 20]],"
    " \"pred_target_kps\": [[120, 50], [200, 50], [336, 68]],"
    " \"expected\": {\"distances\": [20, 40, 60], \"n_keypoints\": 3,"
    "   \"img\": {\"size\": 400, \"threshold\": {\"0.05\": 20, \"0.1\": 40, \"0.15\": 60},"
    "     \"correct\": {\"0.05\": [true, false, false], \"0.1\": [true, true, false], \"0.15\": [true, true, true]},"
    "     \"n_correct\": {\"0.05\": 1, \"0.1\": 2, \"0.15\": 3}, \"pck\": {\"0.05\": 0.3333333333333333, \"0.1\": 0.6666666666666666, \"0.15\": 1}},"
    "   \"bbox\": {\"size\": 400, \"n_correct\": {\"0.05\": 1, \"0.1\": 2, \"0.15\": 3}}}},"
    /* 2. a 10x20 box inside a 640x480 image: bbox thresholds 1, 2, 3; img 32, 64, 96. */
    "{\"name\": \"small_box_in_large_image\","
    " \"hand_check\": \"box [300,200,310,220] -> max(10,20)=20 -> 1,2,3; img 640 -> 32,64,96. d = 1, 2.5, 30, 70\","
    " \"target_size\": [640, 480], \"target_bbox\": [300, 200, 310, 220],"
    " \"gt_target_kps\": [[305, 210], [302, 215], [308, 201], [300, 200]],"
    " \"pred_target_kps\": [[305, 211], [304.5, 215], [308, 231], [370, 200]],"
    " \"expected\": {\"distances\": [1, 2.5, 30, 70],"
    "   \"img\": {\"size\": 640, \"correct\": {\"0.05\": [true, true, true, false], \"0.1\": [true, true, true, false], \"0.15\": [true, true, true, true]},"
    "           \"pck\": {\"0.05\": 0.75, \"0.1\": 0.75, \"0.15\": 1}},"
    "   \"bbox\": {\"size\": 20, \"threshold\": {\"0.05\": 1, \"0.1\": 2, \"0.15\": 3},"
    "           \"correct\": {\"0.05\": [true, false, false, false], \"0.1\": [true, false, false, false], \"0.15\": [true, true, false, false]},"
    "           \"pck\": {\"0.05\": 0.25, \"0.1\": 0.25, \"0.15\": 0.5}}}},"
    /* 3. one keypoint just outside every threshold except the largest. */
    "{\"name\": \"one_keypoint\", \"hand_check\": \"300x300, box 100 wide: img 15,30,45; bbox 5,10,15; d = 44.99\","
    " \"target_size\": [300, 300], \"target_bbox\": [100, 100, 200, 150],"
    " \"gt_target_kps\": [[150, 125]], \"pred_target_kps\": [[194.99, 125]],"
    " \"expected\": {\"n_keypoints\": 1,"
    "   \"img\": {\"correct\": {\"0.05\": [false], \"0.1\": [false], \"0.15\": [true]}, \"pck\": {\"0.05\": 0, \"0.1\": 0, \"0.15\": 1}},"
    "   \"bbox\": {\"correct\": {\"0.05\": [false], \"0.1\": [false], \"0.15\": [false]}, \"pck\": {\"0.05\": 0, \"0.1\": 0, \"0.15\": 0}}}},"
    /* 4. invisible keypoints are not judged: 2 of 4 visible, one of them correct. */
    "{\"name\": \"invisible_keypoints\","
    " \"hand_check\": \"200x200 -> img 10,20,30; visible kps 0 (d 0) and 3 (d 25); kps 1, 2 would be wrong but are skipped\","
    " \"target_size\": [200, 200], \"target_bbox\": [0, 0, 200, 200],"
    " \"gt_target_kps\": [[10, 10], [50, 50], [60, 60], [100, 100]],"
    " \"pred_target_kps\": [[10, 10], [190, 190], [0, 0], [115, 120]],"
    " \"visible\": [1, 0, 0, 1],"
    " \"expected\": {\"n_keypoints\": 2, \"distances\": [0, 25],"
    "   \"img\": {\"n_correct\": {\"0.05\": 1, \"0.1\": 1, \"0.15\": 2}, \"pck\": {\"0.05\": 0.5, \"0.1\": 0.5, \"0.15\": 1}}}},"
    /* 5. two pairs in one case: pooled@0.1 3/4 vs per image (1 + 2/3) / 2. */
    "{\"name\": \"two_pairs_pooled_vs_per_image\","
    " \"hand_check\": \"both 100x100 -> img 5,10,15. pair A: 1 kp d 0; pair B: 3 kps d 0, 8, 12. pooled@0.1 = 3/4, per image = (1 + 2/3)/2\","
    " \"pairs\": ["
    "  {\"target_size\": [100, 100], \"target_bbox\": [0, 0, 100, 100], \"gt_target_kps\": [[50, 50]], \"pred_target_kps\": [[50, 50]]},"
    "  {\"target_size\": [100, 100], \"target_bbox\": [0, 0, 100, 100], \"gt_target_kps\": [[10, 10], [20, 20], [30, 30]],"
    "   \"pred_target_kps\": [[10, 10], [20, 28], [42, 30]]}],"
    " \"expected\": {\"n_keypoints\": 4, \"distances\": [0, 0, 8, 12],"
    "   \"img\": {\"n_correct\": {\"0.05\": 2, \"0.1\": 3, \"0.15\": 4}, \"pck\": {\"0.05\": 0.5, \"0.1\": 0.75, \"0.15\": 1},"
    "           \"per_image_mean\": {\"0.05\": 0.6666666666666666, \"0.1\": 0.8333333333333333, \"0.15\": 1}}}"
    "},"
    /* 6. the double threshold sits below the decimal one: 0.15*101 = 15.149999999999999 < 15.15. */
    "{\"name\": \"double_threshold_below_decimal\","
    " \"hand_check\": \"img size 101: thresholds 5.050000000000001, 10.100000000000001, 15.149999999999999 (numpy); d = 15.15 -> wrong at every alpha\","
    " \"target_size\": [101, 60], \"target_bbox\": [0, 0, 101, 60],"
    " \"gt_target_kps\": [[0, 30]], \"pred_target_kps\": [[15.15, 30]],"
    " \"expected\": {\"distances\": [15.15],"
    "   \"img\": {\"threshold\": {\"0.15\": 15.149999999999999}, \"correct\": {\"0.05\": [false], \"0.1\": [false], \"0.15\": [false]}},"
    "   \"precision_sensitive\": [\"img correct@0.15: d 15.15 vs alpha*size 15.149999999999999\"]}},"
    /* 7. no box at all: img thresholds only (50x200 -> 10, 20, 30), flags as 0/1. */
    "{\"name\": \"img_only_no_box\", \"hand_check\": \"d = 20: wrong at 0.05 (10), right at 0.1 (20) and 0.15\","
    " \"target_size\": [50, 200], \"gt_target_kps\": [[0, 0]], \"pred_target_kps\": [[0, 20]],"
    " \"expected\": {\"img\": {\"correct\": {\"0.05\": [0], \"0.1\": [1], \"0.15\": [1]}, \"per_image\": {\"0.1\": 1}}}}"
    "],"
    " \"aggregate\": {\"img\": {\"pooled_counts\": {\"0.05\": [7, 16], \"0.1\": [10, 16], \"0.15\": [15, 16]}}}}";

static void test_own_cases(void **state)
{
    (void)state;
    int n = 0;
    int rc = check_cases_text(own_cases, "(own cases)", &n);
    if (rc < 0)
        fail_msg("%s", dhf_err_msg());
    assert_int_equal(rc, 0);
    assert_int_equal(n, 7);
}

/* The checker itself must be able to fail: a wrong expectation is reported. */
static void test_checker_detects_wrong_expectation(void **state)
{
    (void)state;
    const char *wrong =
        "{\"alphas\": [0.1], \"cases\": [{\"name\": \"w\", \"target_size\": [100, 100],"
        " \"target_bbox\": [0, 0, 100, 100], \"gt_target_kps\": [[0, 0]], \"pred_target_kps\": [[10, 0.001]],"
        " \"expected\": {\"img\": {\"correct\": {\"0.1\": [true]}, \"pck\": {\"0.1\": 1}}}}]}";
    fprintf(stderr, "  (two mismatches expected below)\n");
    assert_int_equal(check_cases_text(wrong, "(deliberately wrong)", NULL), 2);
    assert_int_equal(check_cases_text("{\"cases\": 3}", "(malformed)", NULL), -1);
}

static void test_threshold_boundary_arithmetic(void **state)
{
    (void)state;
    /* Exactly at α·max: <= counts. */
    assert_true(dhf_pck_correct(10.0, 0.1, 100.0));
    assert_false(dhf_pck_correct(nextafter(10.0, 11.0), 0.1, 100.0));
    /* The threshold is alpha*size in double, as numpy computes it: 0.15*101 is
     * 15.149999999999999 there, so a distance of 15.15 is NOT correct (exact
     * decimal arithmetic would say it is), while 0.1*101 = 10.100000000000001
     * admits 10.1. */
    assert_true(dhf_pck_threshold(0.15, 101.0) == 15.149999999999999);
    double far[2] = {15.15, 0}, origin[2] = {0, 0};
    assert_true(dhf_pck_distance(far, origin) == 15.15);
    assert_false(dhf_pck_correct(15.15, 0.15, 101.0));
    assert_true(dhf_pck_correct(10.1, 0.1, 101.0));
    /* ...and the distance is sqrt(dx²+dy²): a 3-4-5 triangle is exactly 5. */
    double p[2] = {13, 14}, g[2] = {10, 10};
    assert_true(dhf_pck_distance(p, g) == 5.0);
    /* Sizes: max of the image sides; max of the box sides (no +1). */
    assert_true(dhf_pck_img_size(120, 480) == 480.0);
    assert_true(dhf_pck_bbox_size(30, 100, 90, 400) == 300.0);
}

/* A padded-resize prediction: the matcher works in the padded 100x100 load
 * frame of a 200x100 target, the judgement in the original frame. */
static void test_padded_resize_case(void **state)
{
    (void)state;
    dhf_frame f;
    assert_int_equal(dhf_frame_init(&f, 200, 100, 100, DHF_RESIZE_PAD), 0);
    /* 200x100 -> 200x200 canvas, image at y offset 50, scale 0.5. */
    assert_int_equal(f.off_x, 0);
    assert_int_equal(f.off_y, 50);
    double x, y;
    dhf_frame_to_orig(&f, 60, 45, &x, &y);      /* load (60,45) -> (120, 40) */
    assert_true(x == 120.0 && y == 40.0);
    double pred[2] = {x, y}, gt[2] = {120, 50};
    double d = dhf_pck_distance(pred, gt);
    assert_true(d == 10.0);
    /* img threshold from the ORIGINAL 200x100 image: 0.05*200 = 10 -> correct;
     * had the threshold been taken in the 100x100 load frame (5), it would not be. */
    assert_true(dhf_pck_correct(d, 0.05, dhf_pck_img_size(200, 100)));
    assert_false(dhf_pck_correct(d, 0.05, 100 * 0.5));
    /* Same prediction under stretch: load (60, 45) of a 200x100 image -> (120, 90). */
    assert_int_equal(dhf_frame_init(&f, 200, 100, 100, DHF_RESIZE_STRETCH), 0);
    dhf_frame_to_orig(&f, 60, 45, &x, &y);
    assert_true(x == 120.0 && y == 45.0 * 100.0 / 100.0 && y == 45.0);
}

/* Per category, category mean and breakdowns on a hand-computed set:
 *   pair 0: cat 0 (bird), viewpoint 0, 2 kps, both correct @0.1
 *   pair 1: cat 0 (bird), viewpoint 2, 2 kps, 0 correct
 *   pair 2: cat 1 (cat),  viewpoint 0, 1 kp,  correct
 * img sizes 100 (threshold@0.1 = 10); bbox sizes 20 (threshold 2). */
static void test_categories_and_breakdowns(void **state)
{
    (void)state;
    dhf_pck_kp kps[5];
    memset(kps, 0, sizeof kps);
    const int pair[5] = {0, 0, 1, 1, 2}, cat[5] = {0, 0, 0, 0, 1}, view[5] = {0, 0, 2, 2, 0};
    const double dist[5] = {0, 1, 50, 50, 5};
    for (int i = 0; i < 5; i++) {
        kps[i].pair = pair[i];
        kps[i].category = cat[i];
        kps[i].gt[0] = 10, kps[i].gt[1] = 10;
        kps[i].pred[0] = 10 + dist[i], kps[i].pred[1] = 10;
        kps[i].size[DHF_PCK_IMG] = 100;
        kps[i].size[DHF_PCK_BBOX] = 20;
        for (int a = 0; a < DHF_PCK_NATTRS; a++)
            kps[i].attr[a] = -1;
        kps[i].attr[DHF_PCK_ATTR_VIEWPOINT] = view[i];
    }
    const char *names[3] = {"bird", "cat", "dog"};
    const double alphas[1] = {0.1};
    dhf_pck_report r;
    assert_int_equal(dhf_pck_compute(kps, 5, 3, names, 3, alphas, 1, &r), 0);
    /* overall img: correct kps 0, 1, 4 -> 3/5; per image (1 + 0 + 1)/3. */
    assert_true(r.overall.per_keypoint[DHF_PCK_IMG][0] == 3.0 / 5.0);
    assert_true(r.overall.per_image[DHF_PCK_IMG][0] == 2.0 / 3.0);
    /* bbox (threshold 2): kps 0 (d 0), 1 (d 1) -> 2/5; per image (1 + 0 + 0)/3. */
    assert_true(r.overall.per_keypoint[DHF_PCK_BBOX][0] == 2.0 / 5.0);
    assert_true(r.overall.per_image[DHF_PCK_BBOX][0] == 1.0 / 3.0);
    /* bird: 2/4 pooled, (1 + 0)/2 per image; cat: 1/1; dog: empty. */
    assert_true(r.per_category[0].per_keypoint[DHF_PCK_IMG][0] == 0.5);
    assert_true(r.per_category[0].per_image[DHF_PCK_IMG][0] == 0.5);
    assert_int_equal(r.per_category[0].n_pairs, 2);
    assert_true(r.per_category[1].per_keypoint[DHF_PCK_IMG][0] == 1.0);
    assert_int_equal(r.per_category[2].n_keypoints, 0);
    assert_true(isnan(r.per_category[2].per_keypoint[DHF_PCK_IMG][0]));
    /* mean over categories with keypoints: (0.5 + 1)/2. */
    assert_true(r.category_mean[0][DHF_PCK_IMG][0] == 0.75);
    /* viewpoint 0: kps 0, 1, 4 all correct; viewpoint 2: none. */
    assert_int_equal(r.n_buckets[DHF_PCK_ATTR_VIEWPOINT], 2);
    assert_int_equal(r.buckets[DHF_PCK_ATTR_VIEWPOINT][0].value, 0);
    assert_true(r.buckets[DHF_PCK_ATTR_VIEWPOINT][0].stats.per_keypoint[DHF_PCK_IMG][0] == 1.0);
    assert_int_equal(r.buckets[DHF_PCK_ATTR_VIEWPOINT][1].value, 2);
    assert_true(r.buckets[DHF_PCK_ATTR_VIEWPOINT][1].stats.per_keypoint[DHF_PCK_IMG][0] == 0.0);
    assert_int_equal(r.n_buckets[DHF_PCK_ATTR_SCALE], 0);

    /* The JSON form: empty categories left out, breakdown keyed by value. */
    cJSON *j = dhf_pck_report_to_json(&r);
    assert_non_null(j);
    char *txt = cJSON_PrintUnformatted(j);
    cJSON *back = cJSON_Parse(txt);
    assert_non_null(back);
    assert_non_null(cJSON_GetObjectItem(cJSON_GetObjectItem(back, "per_category"), "bird"));
    assert_null(cJSON_GetObjectItem(cJSON_GetObjectItem(back, "per_category"), "dog"));
    const cJSON *v = cJSON_GetObjectItem(
        cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(back, "overall"), "img"), "per_image"), "0.1");
    assert_true(cJSON_IsNumber(v) && v->valuedouble == 2.0 / 3.0);
    assert_non_null(cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(back, "breakdowns"),
                                                            "viewpoint_variation"), "2"));
    cJSON_Delete(back);
    free(txt);
    cJSON_Delete(j);

    /* Mixed categories within one pair are rejected. */
    dhf_pck_report_free(&r);
    kps[1].category = 1;
    assert_int_equal(dhf_pck_compute(kps, 5, 3, names, 3, alphas, 1, &r), -1);
    assert_non_null(strstr(dhf_err_msg(), "pair 0"));
    dhf_pck_report_free(&r);
}

static void test_exact_json_numbers(void **state)
{
    (void)state;
    const double vals[] = {0.1 + 0.2, 1.0 / 3.0, 5.001000000000005, 2.0 / 3.0, 1e-300, 123456789.123456789, 0.0,
                           240.0, -3.0, 2.5e15, 47.699999999999996};
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        cJSON *n = dhf_json_exact_number(vals[i]);
        char *txt = cJSON_PrintUnformatted(n);
        assert_true(strtod(txt, NULL) == vals[i]);
        free(txt);
        cJSON_Delete(n);
    }
    cJSON *n240 = dhf_json_exact_number(240.0);
    char *t240 = cJSON_PrintUnformatted(n240);
    assert_string_equal(t240, "240");   /* not "2.4e+02" */
    free(t240);
    cJSON_Delete(n240);
    char buf[40];
    assert_string_equal(dhf_pck_alpha_key(0.1, buf, sizeof buf), "0.1");
    assert_string_equal(dhf_pck_alpha_key(0.05, buf, sizeof buf), "0.05");
    assert_string_equal(dhf_pck_alpha_key(0.15, buf, sizeof buf), "0.15");
    cJSON *nan = dhf_json_exact_number(NAN);
    assert_true(cJSON_IsNull(nan));
    cJSON_Delete(nan);
    const double dup[2] = {0.1, 0.1};
    assert_int_equal(dhf_pck_check_alphas(dup, 2), -1);
    const double bad[1] = {1.5};
    assert_int_equal(dhf_pck_check_alphas(bad, 1), -1);
}

/* The evaluator's conversion of a dataset pair: invisible keypoints dropped,
 * sizes from the target image and box, attributes carried. */
static void test_pair_to_keypoints(void **state)
{
    (void)state;
    double src[6] = {1, 1, 2, 2, 3, 3}, trg[6] = {10, 10, 20, 20, 30, 30};
    unsigned char vis[3] = {1, 0, 1};
    int ids[3] = {4, 5, 6};
    dhf_pair p = {0};
    p.n_kps = 3;
    p.src_kps = src, p.trg_kps = trg, p.visible = vis, p.kp_ids = ids;
    p.trg_size[0] = 640, p.trg_size[1] = 480;
    p.trg_bbox[0] = 100, p.trg_bbox[1] = 100, p.trg_bbox[2] = 110, p.trg_bbox[3] = 300;
    p.viewpoint_variation = 1, p.scale_variation = -1, p.truncation = 0, p.occlusion = 2;
    double pred[6] = {10, 10, 0, 0, 33, 34};
    dhf_pck_kp out[3];
    int n = dhf_eval_pair_keypoints(&p, 7, 2, pred, out);
    assert_int_equal(n, 2);
    assert_int_equal(out[0].pair, 7);
    assert_int_equal(out[0].category, 2);
    assert_true(out[1].gt[0] == 30 && out[1].pred[1] == 34);
    assert_true(out[0].size[DHF_PCK_IMG] == 640 && out[0].size[DHF_PCK_BBOX] == 200);
    assert_int_equal(out[0].attr[DHF_PCK_ATTR_VIEWPOINT], 1);
    assert_int_equal(out[0].attr[DHF_PCK_ATTR_SCALE], -1);
    assert_int_equal(out[0].attr[DHF_PCK_ATTR_OCCLUSION], 2);
}

int main(int argc, char **argv)
{
    struct stat st;
    if (argc > 1)
        g_cases_path = argv[1];
    else if (stat(FIXTURE_DIR, &st) != 0)
        g_fixture_skipped = 1;   /* a clone without ../shared/fixtures */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixture_cases),
        cmocka_unit_test(test_own_cases),
        cmocka_unit_test(test_checker_detects_wrong_expectation),
        cmocka_unit_test(test_threshold_boundary_arithmetic),
        cmocka_unit_test(test_padded_resize_case),
        cmocka_unit_test(test_categories_and_breakdowns),
        cmocka_unit_test(test_exact_json_numbers),
        cmocka_unit_test(test_pair_to_keypoints),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    if (failed == 0 && g_fixture_skipped) {
        fprintf(stderr, "fixtures folder %s absent: fixture cases skipped\n", FIXTURE_DIR);
        return 77;
    }
    return failed;
}

/* test_pickle.c — the restricted checkpoint pickle (core/pickle.h): hand-written
 * opcode streams in the forms Python's pickle writes (protocols 2 and 4: memo,
 * SETITEM, BUILD of an OrderedDict's state, LONG1, BINFLOAT, STACK_GLOBAL), the tensor
 * rebuild and its bounds, refused globals and opcodes, truncation, and the writer's
 * output read back. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/pickle.h"

#define LOAD(bytes, out) dhf_pickle_load((bytes), sizeof(bytes) - 1, "t.pkl", (out))

static void test_containers_and_scalars(void **state)
{
    (void)state;
    /* {'a': [1, 300, 70000, -5, 2**40], 'b': (1.5, True, None), 'c': 'x'} in protocol 2,
     * with a memo entry reused by BINGET and one SETITEM */
    static const char p[] =
        "\x80\x02}q\x00(X\x01\x00\x00\x00" "aq\x01]q\x02(K\x01M,\x01J\x70\x11\x01\x00"
        "J\xfb\xff\xff\xff\x8a\x06\x00\x00\x00\x00\x00\x01" "e"
        "X\x01\x00\x00\x00" "bG\x3f\xf8\x00\x00\x00\x00\x00\x00\x88N\x87u"
        "X\x01\x00\x00\x00" "c\x8c\x01xsh\x01h\x02s.";
    dhf_pv *v = NULL;
    if (LOAD(p, &v))
        fail_msg("%s", dhf_err_msg());
    assert_int_equal(v->type, DHF_PV_DICT);
    const dhf_pv *a = dhf_pv_get(v, "a"), *b = dhf_pv_get(v, "b"), *c = dhf_pv_get(v, "c");
    assert_non_null(a);
    assert_int_equal(a->type, DHF_PV_LIST);
    assert_int_equal(a->len, 5);
    assert_int_equal(a->items[0]->i, 1);
    assert_int_equal(a->items[1]->i, 300);
    assert_int_equal(a->items[2]->i, 70000);
    assert_int_equal(a->items[3]->i, -5);
    assert_int_equal(a->items[4]->i, (int64_t)1 << 40);
    assert_int_equal(b->type, DHF_PV_TUPLE);
    assert_true(b->items[0]->f == 1.5);
    assert_int_equal(b->items[1]->type, DHF_PV_BOOL);
    assert_int_equal(b->items[2]->type, DHF_PV_NONE);
    assert_string_equal(c->s, "x");
    /* memo: key 'a' (memo 1) -> the list (memo 2) once more, replacing 'a's value */
    assert_int_equal(v->len, 3);
    dhf_pv_free(v);
}

/* an OrderedDict with its _metadata state (BUILD) holding a tensor over a storage */
static void test_state_dict_form(void **state)
{
    (void)state;
    static const char p[] =
        "\x80\x02" "ccollections\nOrderedDict\nq\x00)Rq\x01"
        "X\x01\x00\x00\x00w"
        "ctorch._utils\n_rebuild_tensor_v2\nq\x02"
        "((X\x07\x00\x00\x00storage" "ctorch\nFloatStorage\n"
        "X\x01\x00\x00\x00" "0" "X\x03\x00\x00\x00" "cpu" "K\x08tQ"
        "K\x02K\x02K\x03\x86K\x03K\x01\x86\x89h\x00)Rtq\x03R"
        "s}X\x09\x00\x00\x00_metadatah\x00)R" "sb.";
    dhf_pv *v = NULL;
    if (LOAD(p, &v))
        fail_msg("%s", dhf_err_msg());
    assert_int_equal(v->type, DHF_PV_DICT);
    assert_true(v->ordered);
    const dhf_pv *w = dhf_pv_get(v, "w");
    assert_non_null(w);
    assert_int_equal(w->type, DHF_PV_TENSOR);
    assert_string_equal(w->storage_key, "0");
    assert_int_equal(w->dtype, DHF_PV_F32);
    assert_int_equal(w->storage_numel, 8);
    assert_int_equal(w->offset, 2);
    assert_int_equal(w->ndim, 2);
    assert_int_equal(w->size[0], 2);
    assert_int_equal(w->size[1], 3);
    assert_int_equal(w->stride[0], 3);
    dhf_pv_free(v);

    /* the same view one element too far: refused, naming the storage */
    static const char far[] =
        "\x80\x02" "ctorch._utils\n_rebuild_tensor_v2\n"
        "((X\x07\x00\x00\x00storage" "ctorch\nFloatStorage\n"
        "X\x01\x00\x00\x00" "0" "X\x03\x00\x00\x00" "cpu" "K\x07tQ"
        "K\x02K\x02K\x03\x86K\x03K\x01\x86\x89NtR.";
    assert_int_equal(LOAD(far, &v), -1);
    assert_non_null(strstr(dhf_err_msg(), "reaches past storage '0'"));
}

static void test_protocol4_stack_global(void **state)
{
    (void)state;
    /* protocol 4: FRAME, SHORT_BINUNICODE, STACK_GLOBAL, MEMOIZE */
    static const char p[] =
        "\x80\x04\x95\x20\x00\x00\x00\x00\x00\x00\x00"
        "\x8c\x0b" "collections\x94\x8c\x0bOrderedDict\x94\x93\x94)R\x94.";
    dhf_pv *v = NULL;
    if (LOAD(p, &v))
        fail_msg("%s", dhf_err_msg());
    assert_int_equal(v->type, DHF_PV_DICT);
    assert_true(v->ordered);
    dhf_pv_free(v);
}

static void test_refusals(void **state)
{
    (void)state;
    dhf_pv *v = NULL;
    static const char evil[] = "\x80\x02" "cposix\nsystem\nX\x02\x00\x00\x00ls\x85R.";
    assert_int_equal(LOAD(evil, &v), -1);
    assert_null(v);
    assert_non_null(strstr(dhf_err_msg(), "refused global 'posix.system'"));
    assert_non_null(strstr(dhf_err_msg(), "t.pkl: at byte"));
    static const char evil4[] = "\x80\x04\x8c\x08" "builtins\x8c\x04" "eval\x93.";
    assert_int_equal(LOAD(evil4, &v), -1);
    assert_non_null(strstr(dhf_err_msg(), "refused global 'builtins.eval'"));
    static const char inst[] = "\x80\x02(i__main__\nX\n.";     /* INST */
    assert_int_equal(LOAD(inst, &v), -1);
    assert_non_null(strstr(dhf_err_msg(), "opcode 0x69 is not accepted"));
    static const char trunc[] = "\x80\x02X\x10\x00\x00\x00" "abc";
    assert_int_equal(LOAD(trunc, &v), -1);
    assert_non_null(strstr(dhf_err_msg(), "truncated"));
    static const char nostop[] = "\x80\x02K\x01";
    assert_int_equal(LOAD(nostop, &v), -1);
    static const char two[] = "\x80\x02K\x01K\x02.";
    assert_int_equal(LOAD(two, &v), -1);
    assert_non_null(strstr(dhf_err_msg(), "2 values on the stack"));
    static const char badkey[] =
        "\x80\x02((X\x07\x00\x00\x00storage" "ctorch\nFloatStorage\n"
        "X\x05\x00\x00\x00../x1" "X\x03\x00\x00\x00" "cpu" "K\x01tQ.";
    assert_int_equal(LOAD(badkey, &v), -1);
    assert_non_null(strstr(dhf_err_msg(), "not a plain record name"));
    static const char lone_storage[] = "\x80\x02" "ctorch\nFloatStorage\n.";
    assert_int_equal(LOAD(lone_storage, &v), -1);
    assert_non_null(strstr(dhf_err_msg(), "left as a value"));
    static const char memo_miss[] = "\x80\x02h\x05.";
    assert_int_equal(LOAD(memo_miss, &v), -1);
    assert_non_null(strstr(dhf_err_msg(), "memo entry 5 is not set"));
    /* a list appended into itself through the memo: a cycle, refused */
    static const char cycle[] = "\x80\x02]q\x00h\x00" "a.";
    assert_int_equal(LOAD(cycle, &v), -1);
    assert_non_null(strstr(dhf_err_msg(), "into itself"));
}

/* the writer's stream (torch.save's protocol-2 forms) reads back to the same tree */
static void test_dump_then_load(void **state)
{
    (void)state;
    dhf_pv *root = dhf_pv_dict(false), *sd = dhf_pv_dict(true), *lst = dhf_pv_list();
    const int64_t shape[2] = { 3, 4 };
    assert_int_equal(dhf_pv_set(sd, dhf_pv_str("w"), dhf_pv_tensor("7", DHF_PV_F32, shape, 2)),
                     0);
    assert_int_equal(dhf_pv_append(lst, dhf_pv_int(-3000000000LL)), 0);
    assert_int_equal(dhf_pv_append(lst, dhf_pv_float(0.1)), 0);
    assert_int_equal(dhf_pv_append(lst, dhf_pv_str("é")), 0);
    assert_int_equal(dhf_pv_set(root, dhf_pv_str("net"), sd), 0);
    assert_int_equal(dhf_pv_set(root, dhf_pv_str("l"), lst), 0);
    assert_int_equal(dhf_pv_set(root, dhf_pv_int(5), dhf_pv_bool(true)), 0);
    void *data = NULL;
    size_t n = 0;
    assert_int_equal(dhf_pickle_dump(root, &data, &n), 0);
    dhf_pv *back = NULL;
    if (dhf_pickle_load(data, n, "dump", &back))
        fail_msg("%s", dhf_err_msg());
    const dhf_pv *w = dhf_pv_get(dhf_pv_get(back, "net"), "w"), *l = dhf_pv_get(back, "l");
    assert_true(dhf_pv_get(back, "net")->ordered);
    assert_int_equal(w->type, DHF_PV_TENSOR);
    assert_int_equal(w->storage_numel, 12);
    assert_int_equal(w->stride[0], 4);
    assert_int_equal(l->items[0]->i, -3000000000LL);
    assert_true(l->items[1]->f == 0.1);
    assert_string_equal(l->items[2]->s, "é");
    assert_int_equal(back->items[2]->i, 5);
    dhf_pv_free(back);
    free(data);
    dhf_pv_free(root);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_containers_and_scalars),
        cmocka_unit_test(test_state_dict_form),
        cmocka_unit_test(test_protocol4_stack_global),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_dump_then_load),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

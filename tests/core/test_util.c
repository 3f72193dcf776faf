/* test_util.c — core helpers: error messages, atomic writes, mkdir -p, path joins,
 * JSONL logs, duration formatting and the progress counter.
 * dhf-test: label=unit */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/error.h"
#include "core/fsutil.h"
#include "core/jsonl.h"
#include "core/progress.h"

static char tmpdir[256];

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/dhf_test_util_XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static void test_error_wrap(void **state)
{
    (void)state;
    assert_int_equal(dhf_err_set("tensor '%s': expected %d dims", "w", 4), -1);
    dhf_err_wrap("%s", "model.safetensors");
    assert_string_equal(dhf_err_msg(), "model.safetensors: tensor 'w': expected 4 dims");
    dhf_err_clear();
    assert_string_equal(dhf_err_msg(), "");
}

static void test_atomic_write_and_read(void **state)
{
    (void)state;
    char path[512], sub[512];
    assert_int_equal(dhf_path_join(path, sizeof path, tmpdir, "a/b/c"), 0);
    assert_int_equal(dhf_mkdir_p(path), 0);
    assert_true(dhf_is_dir(path));
    assert_int_equal(dhf_path_join(sub, sizeof sub, path, "f.txt"), 0);
    assert_int_equal(dhf_write_file_atomic(sub, "hello", 5), 0);
    char *data = NULL;
    size_t len = 0;
    assert_int_equal(dhf_read_file(sub, &data, &len), 0);
    assert_int_equal(len, 5);
    assert_string_equal(data, "hello");
    free(data);
    /* an aborted atomic write leaves the old file and no temp file */
    dhf_atomic_file af;
    assert_int_equal(dhf_atomic_open(&af, sub), 0);
    fputs("partial", af.fp);
    dhf_atomic_abort(&af);
    assert_false(dhf_path_exists(af.tmp));
    assert_int_equal(dhf_read_file(sub, &data, &len), 0);
    assert_string_equal(data, "hello");
    free(data);
    /* errors name the path */
    assert_int_equal(dhf_read_file("/nonexistent/x.yaml", &data, &len), -1);
    assert_non_null(strstr(dhf_err_msg(), "/nonexistent/x.yaml"));
    assert_int_equal(dhf_mkdir_p(sub), -1); /* a file is in the way */
    assert_string_equal(dhf_basename("/a/b/c.jpg"), "c.jpg");
    /* rm -r of the tree made above; a missing path is fine */
    char top[512];
    assert_int_equal(dhf_path_join(top, sizeof top, tmpdir, "a"), 0);
    assert_int_equal(dhf_remove_tree(top), 0);
    assert_false(dhf_path_exists(top));
    assert_int_equal(dhf_remove_tree(top), 0);
    char small[8];
    assert_int_equal(dhf_path_join(small, sizeof small, "abcdef", "ghij"), -1);
    assert_int_equal(dhf_path_join(path, sizeof path, "dir", "/abs"), 0);
    assert_string_equal(path, "/abs");
}

static void test_jsonl(void **state)
{
    (void)state;
    char path[512];
    dhf_path_join(path, sizeof path, tmpdir, "m.jsonl");
    dhf_jsonl log;
    assert_int_equal(dhf_jsonl_open(&log, path, 0), 0);
    for (int i = 0; i < 3; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "step", i);
        assert_int_equal(dhf_jsonl_write(&log, o), 0);
        cJSON_Delete(o);
    }
    assert_int_equal(dhf_jsonl_close(&log), 0);
    assert_int_equal(dhf_jsonl_open(&log, path, 1), 0); /* append keeps lines */
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "step", 3);
    assert_int_equal(dhf_jsonl_write(&log, o), 0);
    cJSON_Delete(o);
    dhf_jsonl_close(&log);
    char *data;
    size_t len;
    assert_int_equal(dhf_read_file(path, &data, &len), 0);
    assert_string_equal(data, "{\"step\":0}\n{\"step\":1}\n{\"step\":2}\n{\"step\":3}\n");
    free(data);
}

static void test_progress(void **state)
{
    (void)state;
    char b[32];
    dhf_format_duration(12.34, b, sizeof b);
    assert_string_equal(b, "12.3s");
    dhf_format_duration(185, b, sizeof b);
    assert_string_equal(b, "3m05s");
    dhf_format_duration(3720, b, sizeof b);
    assert_string_equal(b, "1h02m");
    setenv("DHF_PROGRESS", "0", 1);
    dhf_progress p;
    dhf_progress_begin(&p, "test", 10);
    for (int i = 0; i < 10; i++)
        dhf_progress_step(&p, 1, NULL);
    assert_int_equal(p.done, 10);
    dhf_progress_end(&p);
    assert_true(p.finished);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_error_wrap),
        cmocka_unit_test(test_atomic_write_and_read),
        cmocka_unit_test(test_jsonl),
        cmocka_unit_test(test_progress),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

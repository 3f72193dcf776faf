/* commands.h — the dhf sub-commands. Each lives in src/cli/cmd_<name>.c as
 * int dhf_cmd_<name>(int argc, char **argv) with argv[0] = "<name>", and returns
 * the process exit code: 0 success, 1 user error (message printed), 2 usage error. */
#ifndef DHF_CLI_COMMANDS_H
#define DHF_CLI_COMMANDS_H

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} dhf_command;

int dhf_cmd_info(int argc, char **argv);
int dhf_cmd_config(int argc, char **argv);
int dhf_cmd_data(int argc, char **argv);
int dhf_cmd_synth(int argc, char **argv);
int dhf_cmd_heatmap(int argc, char **argv);
int dhf_cmd_eval(int argc, char **argv);
int dhf_cmd_pck(int argc, char **argv);
int dhf_cmd_extract(int argc, char **argv);
int dhf_cmd_cache(int argc, char **argv);
int dhf_cmd_init_model(int argc, char **argv);
int dhf_cmd_train(int argc, char **argv);
int dhf_cmd_import(int argc, char **argv);
int dhf_cmd_export(int argc, char **argv);
int dhf_cmd_table1(int argc, char **argv);
int dhf_cmd_generate(int argc, char **argv);
int dhf_cmd_match(int argc, char **argv);
int dhf_cmd_draw(int argc, char **argv);

/* The table, in the order `dhf --help` lists it (defined in main.c). */
extern const dhf_command dhf_commands[];

#endif

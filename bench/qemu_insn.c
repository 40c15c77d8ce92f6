/*
 * Instruction counter for qemu-user (TCG plugin), for the cost of tern on
 * ARM without a board: bench/callgrind.sh -q runs the aarch64 build under
 * `qemu-aarch64 -plugin qemu_insn.so,out=PREFIX` and reads the counts.
 *
 *   cc -shared -fPIC -O2 -o qemu_insn.so bench/qemu_insn.c
 *
 * Debian's qemu-user is built with plugin support but ships no plugins,
 * and no qemu-plugin.h; the few declarations below follow QEMU's plugin
 * API version 1 (QEMU 7.x, docs/devel/tcg-plugins.rst), written here
 * rather than copied. At translation time each translated block gets an
 * inline "add its instruction count to a 64-bit counter" op, so the count
 * is of guest instructions executed. At exit (including after a fork, in
 * the child) it writes "COUNT\n" to PREFIX.PID.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

typedef uint64_t qemu_plugin_id_t;
struct qemu_plugin_tb;
struct qemu_info_t;
enum qemu_plugin_op { QEMU_PLUGIN_INLINE_ADD_U64 };
typedef void (*qemu_plugin_vcpu_tb_trans_cb_t)(qemu_plugin_id_t, struct qemu_plugin_tb *);
typedef void (*qemu_plugin_udata_cb_t)(qemu_plugin_id_t, void *);

void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t, qemu_plugin_vcpu_tb_trans_cb_t);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *);
void qemu_plugin_register_vcpu_tb_exec_inline(struct qemu_plugin_tb *, enum qemu_plugin_op,
                                              void *, uint64_t);
void qemu_plugin_register_atexit_cb(qemu_plugin_id_t, qemu_plugin_udata_cb_t, void *);

__attribute__((visibility("default"))) int qemu_plugin_version = 1;

static uint64_t insns;
static char out[4096];

static void on_trans(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    (void)id;
    qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &insns,
                                             qemu_plugin_tb_n_insns(tb));
}

static void on_exit(qemu_plugin_id_t id, void *p)
{
    (void)id;
    (void)p;
    char path[4200];
    snprintf(path, sizeof path, "%s.%d", out[0] ? out : "qemu_insn", (int)getpid());
    FILE *f = fopen(path, "w");
    if (f) {
        fprintf(f, "%llu\n", (unsigned long long)insns);
        fclose(f);
    }
}

__attribute__((visibility("default"))) int qemu_plugin_install(qemu_plugin_id_t id,
                                                               const struct qemu_info_t *info,
                                                               int argc, char **argv)
{
    (void)info;
    for (int i = 0; i < argc; i++) {
        if (strncmp(argv[i], "out=", 4) == 0) {
            snprintf(out, sizeof out, "%s", argv[i] + 4);
        }
    }
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_trans);
    qemu_plugin_register_atexit_cb(id, on_exit, NULL);
    return 0;
}

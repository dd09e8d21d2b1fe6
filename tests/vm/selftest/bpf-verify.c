// Diagnostics for the VM harness: load each program of a BPF object alone in the running
// kernel and print, for every one that fails, the end of the verifier's log.
// Usage: bpf-verify OBJ [PROGRAM...]   (default: every program; sections libbpf 1.1 cannot
// type, like "netfilter", are reported and skipped). Exit 1 if any program failed to load.
#include <bpf/libbpf.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LOG_SIZE (16 << 20)

static int wanted(const char *name, int argc, char **argv) {
  if (argc <= 2) return 1;
  for (int i = 2; i < argc; i++)
    if (!strcmp(argv[i], name)) return 1;
  return 0;
}

static void print_tail(const char *log, int lines) {
  const char *p = log + strlen(log);
  int n = 0;
  while (p > log && n <= lines) {
    p--;
    if (*p == '\n') n++;
  }
  fputs(p, stdout);
  if (log[0] && log[strlen(log) - 1] != '\n') putchar('\n');
}

// libbpf's own messages repeat what is printed below (and would interleave with it): drop them.
static int silent(enum libbpf_print_level level, const char *fmt, va_list ap) {
  (void)level, (void)fmt, (void)ap;
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: bpf-verify OBJ [PROGRAM...]\n");
    return 2;
  }
  setvbuf(stdout, NULL, _IOLBF, 0);
  libbpf_set_print(silent);
  struct bpf_object *obj = bpf_object__open_file(argv[1], NULL);
  if (!obj) { fprintf(stderr, "open %s: %s\n", argv[1], strerror(errno)); return 2; }
  int nprog = 0;
  struct bpf_program *p;
  bpf_object__for_each_program(p, obj) nprog++;
  bpf_object__close(obj);
  char *log = malloc(LOG_SIZE);
  int failed = 0, ok = 0, skipped = 0;
  for (int i = 0; i < nprog; i++) {
    struct bpf_object *o = bpf_object__open_file(argv[1], NULL);
    struct bpf_program *target = NULL;
    int j = 0;
    bpf_object__for_each_program(p, o) {
      bpf_program__set_autoload(p, j == i);
      if (j == i) target = p;
      j++;
    }
    const char *name = bpf_program__name(target);
    if (!wanted(name, argc, argv)) { bpf_object__close(o); continue; }
    if (bpf_program__type(target) == BPF_PROG_TYPE_UNSPEC) {
      printf("SKIP %s (section %s: type unknown to this libbpf)\n", name,
             bpf_program__section_name(target));
      skipped++;
      bpf_object__close(o);
      continue;
    }
    log[0] = 0;
    bpf_program__set_log_buf(target, log, LOG_SIZE);
    bpf_program__set_log_level(target, 1);
    int err = bpf_object__load(o);
    if (err) {
      printf("FAIL %s (%s): %s\n--- verifier log (tail) ---\n", name,
             bpf_program__section_name(target), strerror(-err));
      print_tail(log, 40);
      printf("---\n");
      failed++;
    } else {
      printf("ok   %s (%s)\n", name, bpf_program__section_name(target));
      ok++;
    }
    bpf_object__close(o);
  }
  printf("bpf-verify: %d loaded, %d failed, %d skipped\n", ok, failed, skipped);
  return failed ? 1 : 0;
}

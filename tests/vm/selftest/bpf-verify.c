// Diagnostics for the VM harness and the host: load each program of a BPF object alone in the
// running kernel and print, for every one that loads, the instructions the verifier processed, and
// for every one that fails, the end of the verifier's log.
// Usage: bpf-verify [--budget N] OBJ [PROGRAM...]
// Default: every program. Sections libbpf 1.1 cannot type are reported and skipped, except
// "netfilter", typed as netlatd types it. Exit 1 if any program failed to load, or, with --budget,
// if one that loaded took the verifier more than N instructions (the kernel's limit is 1000000: a
// program far below it on one kernel stays loadable on the next).
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

// The instructions the verifier processed, from its statistics line ("processed N insns ..."),
// -1 if the log has none.
static long processed(const char *log) {
  const char *p = strstr(log, "processed ");
  return p ? strtol(p + strlen("processed "), NULL, 10) : -1;
}

// Opens the object with only program `index` to load, typed as netlatd types it; *target is it.
static struct bpf_object *open_one(const char *path, int index, struct bpf_program **target) {
  struct bpf_object *o = bpf_object__open_file(path, NULL);
  if (!o) return NULL;
  struct bpf_program *p;
  int j = 0;
  bpf_object__for_each_program(p, o) {
    bpf_program__set_autoload(p, j == index);
    if (j == index) *target = p;
    /* libbpf 1.1 cannot type netfilter programs: typed as netlatd does (the kernel's 6.4 values) */
    if (!strcmp(bpf_program__section_name(p), "netfilter")) {
      bpf_program__set_type(p, (enum bpf_prog_type)32);            /* BPF_PROG_TYPE_NETFILTER */
      bpf_program__set_expected_attach_type(p, (enum bpf_attach_type)45); /* BPF_NETFILTER */
    }
    j++;
  }
  return o;
}

// Loads an object open_one() opened, with the target's verifier log at `level` into `log`.
static int load(struct bpf_object *o, struct bpf_program *target, int level, char *log) {
  log[0] = 0;
  bpf_program__set_log_buf(target, log, LOG_SIZE);
  bpf_program__set_log_level(target, level);
  return bpf_object__load(o);
}

int main(int argc, char **argv) {
  long budget = 0;
  if (argc >= 3 && !strcmp(argv[1], "--budget")) {
    char *end;
    budget = strtol(argv[2], &end, 10);
    if (*end || budget <= 0) {
      fprintf(stderr, "bpf-verify: --budget %s: not a positive number of instructions\n", argv[2]);
      return 2;
    }
    argc -= 2;
    argv += 2;
  }
  if (argc < 2) {
    fprintf(stderr, "usage: bpf-verify [--budget N] OBJ [PROGRAM...]\n");
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
  int failed = 0, ok = 0, skipped = 0, over = 0;
  for (int i = 0; i < nprog; i++) {
    struct bpf_program *target = NULL;
    struct bpf_object *o = open_one(argv[1], i, &target);
    if (!o || !target) { fprintf(stderr, "open %s: %s\n", argv[1], strerror(errno)); return 2; }
    const char *name = bpf_program__name(target);
    if (!wanted(name, argc, argv)) { bpf_object__close(o); continue; }
    if (bpf_program__type(target) == BPF_PROG_TYPE_UNSPEC) {
      printf("SKIP %s (section %s: type unknown to this libbpf)\n", name,
             bpf_program__section_name(target));
      skipped++;
      bpf_object__close(o);
      continue;
    }
    /* Statistics only (level 4): the full log of a large program would not fit the buffer. */
    int err = load(o, target, 4, log);
    if (err) {
      /* again, with the verifier's reasons (a failed object cannot be loaded twice) */
      bpf_object__close(o);
      o = open_one(argv[1], i, &target);
      if (!o) { fprintf(stderr, "open %s: %s\n", argv[1], strerror(errno)); return 2; }
      err = load(o, target, 1, log);
      name = bpf_program__name(target);
      printf("FAIL %s (%s): %s\n--- verifier log (tail) ---\n", name,
             bpf_program__section_name(target), strerror(-err));
      print_tail(log, 40);
      printf("---\n");
      failed++;
    } else {
      long n = processed(log);
      int too_many = budget && n > budget;
      printf("%s %s (%s): %ld insns processed\n", too_many ? "OVER" : "ok  ", name,
             bpf_program__section_name(target), n);
      ok++;
      over += too_many;
    }
    bpf_object__close(o);
  }
  printf("bpf-verify: %d loaded, %d failed, %d skipped", ok, failed, skipped);
  if (budget) printf(", %d over the budget of %ld insns", over, budget);
  printf("\n");
  if (over) return 1;
  return failed ? 1 : 0;
}

// Harness self-test loader: opens attach.bpf.o, loads and attaches each program one by one
// (a failing program is reported and left out), sends TCP+UDP traffic over loopback and
// prints the hit count of each hook. Exit 0 if every program attached and saw traffic.
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static const char *names[] = {"kprobe", "fentry", "fexit", "tp_btf", "raw_tp", "cgroup_skb"};

static int traffic(void) {
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t l = sizeof sa;
  int ls = socket(AF_INET, SOCK_STREAM, 0);
  if (ls < 0 || bind(ls, (void *)&sa, sizeof sa) || listen(ls, 1) || getsockname(ls, (void *)&sa, &l))
    return -1;
  int c = socket(AF_INET, SOCK_STREAM, 0);
  if (connect(c, (void *)&sa, sizeof sa)) return -1;
  int s = accept(ls, NULL, NULL);
  char buf[64];
  for (int i = 0; i < 50; i++) {
    if (send(c, "ping", 4, 0) != 4 || recv(s, buf, sizeof buf, 0) <= 0) return -1;
  }
  int u = socket(AF_INET, SOCK_DGRAM, 0), v = socket(AF_INET, SOCK_DGRAM, 0);
  sa.sin_port = 0;
  l = sizeof sa;
  if (bind(v, (void *)&sa, sizeof sa) || getsockname(v, (void *)&sa, &l)) return -1;
  for (int i = 0; i < 50; i++) {
    if (sendto(u, "ping", 4, 0, (void *)&sa, sizeof sa) != 4 || recv(v, buf, sizeof buf, 0) != 4)
      return -1;
  }
  close(c); close(s); close(ls); close(u); close(v);
  return 0;
}

int main(int argc, char **argv) {
  const char *obj_path = argc > 1 ? argv[1] : "/guest/attach.bpf.o";
  const char *cg_path = argc > 2 ? argv[2] : "/sys/fs/cgroup/unified";
  libbpf_set_strict_mode(LIBBPF_STRICT_ALL);
  struct bpf_object *obj = bpf_object__open_file(obj_path, NULL);
  if (!obj) { fprintf(stderr, "open %s: %s\n", obj_path, strerror(errno)); return 1; }
  // Load programs one at a time so a failing one does not hide the others.
  struct bpf_program *p;
  int nprog = 0, failed = 0;
  bpf_object__for_each_program(p, obj) nprog++;
  char failed_names[16][64];
  for (int i = 0; i < nprog; i++) {
    int j = 0;
    bpf_object__for_each_program(p, obj) bpf_program__set_autoload(p, j++ == i);
    struct bpf_object *o = bpf_object__open_file(obj_path, NULL);
    j = 0;
    struct bpf_program *q, *target = NULL;
    bpf_object__for_each_program(q, o) {
      bpf_program__set_autoload(q, j == i);
      if (j == i) target = q;
      j++;
    }
    int err = bpf_object__load(o);
    if (err) {
      printf("load %s: FAIL %s\n", bpf_program__name(target), strerror(-err));
      snprintf(failed_names[failed++ % 16], 64, "%s", bpf_program__name(target));
    } else {
      printf("load %s: ok\n", bpf_program__name(target));
    }
    bpf_object__close(o);
  }
  // Load all that loaded alone, then attach.
  int j = 0;
  bpf_object__for_each_program(p, obj) {
    int ok = 1;
    for (int k = 0; k < failed && k < 16; k++)
      if (!strcmp(failed_names[k], bpf_program__name(p))) ok = 0;
    bpf_program__set_autoload(p, ok);
    j++;
  }
  if (bpf_object__load(obj)) { fprintf(stderr, "load object failed\n"); return 1; }
  int cg = open(cg_path, O_RDONLY | O_DIRECTORY);
  bpf_object__for_each_program(p, obj) {
    if (!bpf_program__autoload(p)) continue;
    struct bpf_link *link;
    if (bpf_program__type(p) == BPF_PROG_TYPE_CGROUP_SKB)
      link = bpf_program__attach_cgroup(p, cg);
    else
      link = bpf_program__attach(p);
    if (!link) {
      printf("attach %s: FAIL %s\n", bpf_program__name(p), strerror(errno));
      failed++;
    } else {
      printf("attach %s: ok\n", bpf_program__name(p));
    }
  }
  if (traffic()) { perror("traffic"); return 1; }
  int fd = bpf_object__find_map_fd_by_name(obj, "hits");
  int zero_hits = 0;
  for (__u32 k = 0; k < sizeof names / sizeof names[0]; k++) {
    __u64 v = 0;
    bpf_map_lookup_elem(fd, &k, &v);
    printf("hits %s %llu\n", names[k], (unsigned long long)v);
    if (!v) zero_hits++;
  }
  printf("attach-test: %d failed, %d without hits\n", failed, zero_hits);
  return failed || zero_hits ? 1 : 0;
}

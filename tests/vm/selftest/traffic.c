// Harness self-test traffic: N request/response messages over loopback for each of
// tcp/udp x IPv4/IPv6 (send() on one socket, recv() on its peer). Stands in for netlat-load
// when proving the VM harness. Usage: traffic [COUNT] [SIZE] [tcp4|tcp6|udp4|udp6]
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int run(int family, int type, int count, int size) {
  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof ss);
  socklen_t l;
  if (family == AF_INET) {
    struct sockaddr_in *a = (void *)&ss;
    a->sin_family = AF_INET;
    a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    l = sizeof *a;
  } else {
    struct sockaddr_in6 *a = (void *)&ss;
    a->sin6_family = AF_INET6;
    a->sin6_addr = in6addr_loopback;
    l = sizeof *a;
  }
  int srv = socket(family, type, 0), cli = socket(family, type, 0), peer;
  if (srv < 0 || cli < 0 || bind(srv, (void *)&ss, l) || getsockname(srv, (void *)&ss, &l)) return -1;
  if (type == SOCK_STREAM) {
    int one = 1;
    if (listen(srv, 1) || connect(cli, (void *)&ss, l)) return -1;
    peer = accept(srv, NULL, NULL);
    setsockopt(cli, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  } else {
    if (connect(cli, (void *)&ss, l)) return -1;
    peer = srv;
  }
  char *buf = calloc(1, size);
  for (int i = 0; i < count; i++) {
    if (send(cli, buf, size, 0) != size) return -1;
    int got = 0;
    while (got < size) {
      int n = recv(peer, buf, size - got, 0);
      if (n <= 0) return -1;
      got += n;
    }
  }
  free(buf);
  close(cli);
  if (peer != srv) close(peer);
  close(srv);
  return 0;
}

int main(int argc, char **argv) {
  int count = argc > 1 ? atoi(argv[1]) : 200, size = argc > 2 ? atoi(argv[2]) : 64;
  const struct { const char *name; int family, type; } cases[] = {
      {"tcp4", AF_INET, SOCK_STREAM}, {"tcp6", AF_INET6, SOCK_STREAM},
      {"udp4", AF_INET, SOCK_DGRAM}, {"udp6", AF_INET6, SOCK_DGRAM}};
  const char *only = argc > 3 ? argv[3] : NULL;
  int rc = 0;
  for (unsigned i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    if (only && strcmp(only, cases[i].name)) continue;
    int r = run(cases[i].family, cases[i].type, count, size);
    printf("traffic %s count=%d size=%d %s\n", cases[i].name, count, size, r ? "FAIL" : "ok");
    if (r) rc = 1;
  }
  return rc;
}

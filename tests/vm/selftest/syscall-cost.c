// Median cost of a trivial system call (getppid) in this machine, in microseconds. Under TCG
// the user/kernel transition is much slower than on hardware; the VM report prints this next
// to the accuracy table, because netlat-load's send() stamp is taken in user space before the
// syscall while netlatd's socket stage starts inside it.
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static int cmp(const void *a, const void *b) {
  long x = *(const long *)a, y = *(const long *)b;
  return (x > y) - (x < y);
}

int main(void) {
  enum { N = 20001 };
  static long d[N], e[N];
  struct timespec a, b;
  for (int i = 0; i < N; i++) {
    clock_gettime(CLOCK_MONOTONIC, &a);
    syscall(SYS_getppid);
    clock_gettime(CLOCK_MONOTONIC, &b);
    d[i] = (b.tv_sec - a.tv_sec) * 1000000000L + (b.tv_nsec - a.tv_nsec);
  }
  for (int i = 0; i < N; i++) {
    clock_gettime(CLOCK_MONOTONIC, &a);
    clock_gettime(CLOCK_MONOTONIC, &b);
    e[i] = (b.tv_sec - a.tv_sec) * 1000000000L + (b.tv_nsec - a.tv_nsec);
  }
  qsort(d, N, sizeof d[0], cmp);
  qsort(e, N, sizeof e[0], cmp);
  // median(syscall bracket) - median(empty bracket): the clock reads themselves cancel out.
  printf("syscall_getppid_p50_us=%.3f\n", (d[N / 2] - e[N / 2]) / 1000.0);
  return 0;
}

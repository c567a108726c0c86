/* A program that crashes in a function the tests look for in gdb's
 * backtrace, holding a marker string and mixed memory. With "wait", it
 * pauses until a signal kills it (for many crashes at one moment). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

char marker[64];

__attribute__((noinline)) void coreseal_crash_here(volatile int *p) { *p = 42; }

int main(int argc, char **argv) {
    strcpy(marker, "CORESEAL-MARKER-");
    strcat(marker, "a41c93e0");
    size_t n = 4 << 20;
    unsigned char *heap = malloc(n);
    for (size_t i = 0; i < n; i++) heap[i] = (i < n / 2) ? 0 : (unsigned char)(i * 7);
    printf("%s ready\n", marker);
    fflush(stdout);
    if (argc > 1 && strcmp(argv[1], "wait") == 0) pause();
    coreseal_crash_here(NULL);
    return heap[0];
}

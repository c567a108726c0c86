/* Holds mixed memory like a real process, then waits to be gcore'd:
 * a third zeros (touched, so they are in the core), a third random bytes,
 * a third text. Prints "ready" when done. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv) {
    size_t mib = argc > 1 ? strtoul(argv[1], NULL, 10) : 1024;
    if (argc > 2 && strcmp(argv[2], "sparse") == 0) {
        /* A big mapping with one page in 256 touched: a mostly-zero core. */
        size_t n = mib << 20;
        unsigned char *m = malloc(n);
        for (size_t i = 0; i < n; i += 4096 * 256) m[i] = (unsigned char)(i >> 12);
        printf("ready\n");
        fflush(stdout);
        pause();
        return m[0];
    }
    size_t third = (mib << 20) / 3;
    unsigned char *zeros = malloc(third), *rnd = malloc(third), *text = malloc(third);
    memset(zeros, 0, third);
    for (size_t i = 0; i < third; i += 4096) zeros[i] = 0; /* fault pages in */
    uint64_t x = 88172645463325252ULL;
    for (size_t i = 0; i + 8 <= third; i += 8) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        memcpy(rnd + i, &x, 8);
    }
    const char *words[] = {"request ", "user=alice ", "status=200 ", "GET /api/v1/",
                           "session ", "2026-12-03T11:00:00Z ", "error: timeout\n"};
    size_t pos = 0, w = 0;
    while (pos < third) {
        const char *s = words[(w++ * 2654435761u) % 7];
        size_t n = strlen(s);
        if (pos + n > third) n = third - pos;
        memcpy(text + pos, s, n);
        pos += n;
    }
    printf("ready\n");
    fflush(stdout);
    pause();
    return zeros[1] + rnd[1] + text[1];
}

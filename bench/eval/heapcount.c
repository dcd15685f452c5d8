/* A malloc counter to load with LD_PRELOAD into a nivis built with
 * `cargo build --release -p nivis --features system-allocator` (mimalloc bypasses
 * malloc). At exit it prints the peak of live heap bytes and, at that peak, how
 * many blocks of each usable size were live: the evaluator's objects have known
 * sizes (an `Rc<Thunk>` or `Rc<Env>` is 48 bytes, glibc's 56-byte class), so the
 * histogram says which kind of object holds the memory.
 *
 *   gcc -O2 -shared -fPIC -o /tmp/heapcount.so bench/eval/heapcount.c -ldl
 *   LD_PRELOAD=/tmp/heapcount.so target/release/nivis ... 2> histogram
 *
 * Counts are not atomic: the evaluator allocates from one thread, and the
 * other threads' few allocations may be miscounted. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <malloc.h>
#include <stdio.h>
#include <string.h>

#define CLASSES 66 /* 8-byte classes up to 512 bytes, then one for larger */
#define LARGE 24 /* larger blocks by power of two: (512, 1K], (1K, 2K], ... */
static void *(*real_malloc)(size_t);
static void (*real_free)(void *);
static void *(*real_realloc)(void *, size_t);
static void *(*real_calloc)(size_t, size_t);
static long live[CLASSES], at_peak[CLASSES], live_bytes, peak_bytes, live_large, large_at_peak;
static long live_big[LARGE], big_at_peak[LARGE], big_bytes[LARGE], big_bytes_at_peak[LARGE];

static void init(void) {
    if (real_malloc) return;
    real_malloc = dlsym(RTLD_NEXT, "malloc");
    real_free = dlsym(RTLD_NEXT, "free");
    real_realloc = dlsym(RTLD_NEXT, "realloc");
    real_calloc = dlsym(RTLD_NEXT, "calloc");
}

static void count(void *p, int sign) {
    if (!p) return;
    size_t size = malloc_usable_size(p);
    int c = size <= 512 ? (int)((size + 7) / 8) : CLASSES - 1;
    live[c] += sign;
    live_bytes += sign * (long)size;
    if (size > 512) {
        int b = 0;
        while (b < LARGE - 1 && size > ((size_t)1024 << b)) b++;
        live_large += sign * (long)size;
        live_big[b] += sign;
        big_bytes[b] += sign * (long)size;
    }
    if (live_bytes > peak_bytes) {
        peak_bytes = live_bytes;
        large_at_peak = live_large;
        memcpy(at_peak, live, sizeof live);
        memcpy(big_at_peak, live_big, sizeof live_big);
        memcpy(big_bytes_at_peak, big_bytes, sizeof big_bytes);
    }
}

void *malloc(size_t n) { init(); void *p = real_malloc(n); count(p, 1); return p; }
void free(void *p) { init(); count(p, -1); real_free(p); }
void *realloc(void *p, size_t n) { init(); count(p, -1); void *q = real_realloc(p, n); count(q, 1); return q; }
void *calloc(size_t a, size_t b) {
    /* dlsym itself may call calloc before the real one is known. */
    static char early[4096];
    static size_t used;
    if (!real_calloc) {
        if (real_malloc == NULL && used + a * b <= sizeof early) { void *p = early + used; used += (a * b + 15) & ~(size_t)15; return p; }
        init();
    }
    void *p = real_calloc(a, b); count(p, 1); return p;
}

__attribute__((destructor)) static void report(void) {
    fprintf(stderr, "heap peak: %ld bytes (%ld in blocks over 512 bytes)\n", peak_bytes, large_at_peak);
    for (int c = 1; c < CLASSES - 1; c++)
        if (at_peak[c] > 0) fprintf(stderr, "  usable <= %3d bytes: %9ld blocks %9ld KiB\n", c * 8, at_peak[c], at_peak[c] * c * 8 / 1024);
    for (int b = 0; b < LARGE; b++)
        if (big_at_peak[b] > 0) fprintf(stderr, "  usable <= %4ld KiB: %9ld blocks %9ld KiB\n", 1L << b, big_at_peak[b], big_bytes_at_peak[b] / 1024);
}
